"""No 500 for bad input: each bad value sent to every endpoint that takes a body or an id
is a 422 problem whose detail says what is wrong, and changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from tests.api.conftest import Api, problem

BAD_VALUES = {
    "NaN": "NaN",
    "Infinity": "Infinity",
    "huge": "1e999",
    "surrogate": '"\\ud800"',
    "nul": '"a\\u0000b"',
    "deep": '{"a":' * 600 + "1" + "}" * 600,
}
"""Raw JSON text of each bad value (json.dumps cannot write most of them)."""

Template = Callable[[str], str]


def _bodies(record_id: str) -> list[tuple[str, str, Template]]:
    """(method and path, field, body template) for every endpoint that takes a body."""
    rid = json.dumps(record_id)
    one = f"/api/v1/dead-letters/{record_id}"
    return [
        (f"POST {one}/retry", "patch", lambda v: f'{{"patch": {{"a": {v}}}}}'),
        (f"POST {one}/retry", "note", lambda v: f'{{"note": {v}}}'),
        (f"POST {one}/resolve", "note", lambda v: f'{{"note": {v}}}'),
        (f"POST {one}/discard", "note", lambda v: f'{{"note": {v}}}'),
        ("POST /api/v1/dead-letters/retry", "ids", lambda v: f'{{"ids": [{v}]}}'),
        (
            "POST /api/v1/dead-letters/retry",
            "patch",
            lambda v: f'{{"ids": [{rid}], "patch": {{"a": {v}}}}}',
        ),
        (
            "POST /api/v1/dead-letters/retry",
            "patch (paced)",
            lambda v: f'{{"ids": [{rid}], "rate": 5, "patch": {{"a": {v}}}}}',
        ),
        ("POST /api/v1/dead-letters/retry", "filter", lambda v: f'{{"filter": {{"q": {v}}}}}'),
        ("POST /api/v1/dead-letters/resolve", "ids", lambda v: f'{{"ids": [{v}]}}'),
        (
            "POST /api/v1/dead-letters/resolve",
            "filter",
            lambda v: f'{{"filter": {{"topic": {v}}}}}',
        ),
        ("POST /api/v1/dead-letters/discard", "note", lambda v: f'{{"ids": [{rid}], "note": {v}}}'),
        ("POST /api/v1/purge", "topic", lambda v: f'{{"older_than": "1d", "topic": {v}}}'),
        ("POST /api/v1/tokens", "name", lambda v: f'{{"name": {v}}}'),
        (
            "POST /api/v1/archive",
            "filter",
            lambda v: f'{{"file": "a.jsonl", "filter": {{"handler": {v}}}}}',
        ),
        ("POST /api/v1/import", "note", lambda v: f'{{"file": "a.jsonl", "note": {v}}}'),
    ]


BAD_IDS = {"surrogate": "%ED%A0%80", "nul": "a%00b", "latin1": "%FF%FE", "overlong": "%C0%80"}
"""Percent-encoded ids that are not text a store can look up."""


def _send(client: httpx.Client, route: str, body: str | None = None) -> httpx.Response:
    method, path = route.split(" ", 1)
    headers = {"Content-Type": "application/json"}
    return client.request(method, path, content=body, headers=headers if body else None)


@pytest.mark.parametrize("bad", sorted(BAD_VALUES))
def test_bad_values_in_bodies_are_422(api: Api, bad: str) -> None:
    """NaN, Infinity, 1e999, a lone surrogate, a NUL and 600 levels of nesting in any body
    field: a 422 naming what is wrong, and the record is still dead and unchanged."""
    [record] = api.add()
    for route, field, template in _bodies(record.id):
        response = _send(api.admin, route, template(BAD_VALUES[bad]))
        body = problem(response, 422)
        assert len(body["detail"]) > 10, (route, field, body)
        assert api.service.get(record.id) == record, (route, field)


@pytest.mark.parametrize("bad", sorted(BAD_IDS))
def test_bad_ids_in_paths_are_422(api: Api, bad: str) -> None:
    """An id that is not storable text, in every route that takes one, is a 422 or a 404
    problem (never a 500), and nothing changes."""
    [record] = api.add()
    one = f"/api/v1/dead-letters/{BAD_IDS[bad]}"
    routes = [
        f"GET {one}",
        f"DELETE {one}",
        f"POST {one}/retry",
        f"POST {one}/resolve",
        f"POST {one}/discard",
        f"DELETE /api/v1/tokens/{BAD_IDS[bad]}",
        f"GET /api/v1/dead-letters?q={BAD_IDS[bad]}",
        f"GET /api/v1/groups?topic={BAD_IDS[bad]}",
        f"GET /api/v1/export?handler={BAD_IDS[bad]}",
    ]
    for route in routes:
        response = _send(api.admin, route)
        assert response.status_code == 422, (route, response.text)
        assert "detail" in response.json(), route
    assert api.service.get(record.id) == record


def test_console_payload_editor_refuses_what_no_store_keeps(api: Api) -> None:
    """The console's payload editor and note field answer 422 with a reason for NaN,
    Infinity, a lone surrogate, a NUL and deep nesting; the record stays as it was."""
    import re
    from urllib.parse import quote

    [record] = api.add()
    with httpx.Client(base_url=api.url, timeout=30) as client:
        form = client.get("/signin").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf
        signed = client.post("/signin", data={"token": api.tokens["admin"], "csrf": csrf[1]})
        assert signed.status_code == 303
        page = client.get(f"/dead-letters/{record.id}").text
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token
        cases = [("payload", f'{{"a": {bad}}}') for bad in BAD_VALUES.values()]
        # A form's bytes are decoded with replacement characters, so of the bad texts
        # only a NUL can reach the note.
        cases.append(("note", json.loads(BAD_VALUES["nul"])))
        for field, value in cases:
            fields = {"action": "retry", "csrf": token[1], field: value}
            body = "&".join(
                f"{k}={quote(v.encode('utf-8', 'surrogatepass'))}" for k, v in fields.items()
            )
            response = client.post(
                f"/dead-letters/{record.id}/action",
                content=body,
                headers={
                    "Accept": "application/json",
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
            assert response.status_code == 422, (field, value, response.text)
            assert len(response.json()["message"]) > 10
            assert api.service.get(record.id) == record


def test_deleting_an_unknown_id_writes_nothing(api: Api) -> None:
    """A DELETE of an id that does not exist is a 404 and leaves no audit entry."""
    before = len(api.service.audit())
    problem(api.admin.delete("/api/v1/dead-letters/no-such-id"), 404)
    assert len(api.service.audit()) == before
