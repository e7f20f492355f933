"""Masked fields cannot be read back through any door: search, error text, patches."""

from __future__ import annotations

from tests.api.conftest import Api


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
