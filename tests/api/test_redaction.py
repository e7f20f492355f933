"""Masked fields cannot be read back through any door: search, error text, patches."""

from __future__ import annotations

from tests.api.conftest import Api, on_postgres_too


@on_postgres_too
def test_search_does_not_look_into_masked_payloads(api: Api) -> None:
    """With fields masked, ``q`` searches error messages only: no guessing a password."""
    api.add(payload={"password": "hunter2-secret"}, error_message="card declined")
    found = api.viewer.get("/api/v1/dead-letters", params={"q": "hunter2"}).json()
    assert found["items"] == []
    by_message = api.viewer.get("/api/v1/dead-letters", params={"q": "declined"}).json()
    assert len(by_message["items"]) == 1


def test_error_text_quoting_a_secret_is_masked(api: Api) -> None:
    """A record whose error message quotes a masked value shows the mask instead."""
    [record] = api.add(
        payload={"password": "hunter2-secret"}, error_message="bad password 'hunter2-secret'"
    )
    body = api.viewer.get(f"/api/v1/dead-letters/{record.id}").json()
    assert body["error_message"] == "bad password '***'"
    assert "hunter2-secret" not in api.viewer.get("/api/v1/export").text


def test_a_masked_value_in_a_patch_keeps_the_secret(api: Api) -> None:
    """Sending a masked value back in a retry patch keeps the real one (single and bulk)."""
    one, two = api.add(2, payload={"password": "pa55-word", "n": 1})
    api.operator.post(
        f"/api/v1/dead-letters/{one.id}/retry", json={"patch": {"password": "***", "n": 2}}
    )
    api.operator.post(
        "/api/v1/dead-letters/retry", json={"ids": [two.id], "patch": {"password": "***", "n": 3}}
    )
    assert api.service.get(one.id).payload == {"password": "pa55-word", "n": 2}
    assert api.service.get(two.id).payload == {"password": "pa55-word", "n": 3}


def test_a_masked_value_inside_a_list_is_refused(api: Api) -> None:
    """A masked value in a list cannot be restored: 422, and the record is unchanged."""
    [record] = api.add(payload={"users": [{"name": "a", "password": "pa55-word"}]})
    patch = {"users": [{"name": "b", "password": "***"}]}
    response = api.operator.post(f"/api/v1/dead-letters/{record.id}/retry", json={"patch": patch})
    assert response.status_code == 422
    assert "inside the list at users" in response.json()["detail"]
    assert api.service.get(record.id).payload == record.payload
