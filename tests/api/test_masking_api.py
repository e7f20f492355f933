"""Masked values never leave through the API or the console, whatever wrote the record."""

from __future__ import annotations

import re

import httpx

from tests.api.conftest import Api
from tests.leaky import SECRET, leaky_record


def _console(api: Api, client: httpx.Client) -> httpx.Client:
    form = client.get("/signin").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf
    response = client.post("/signin", data={"token": api.tokens["viewer"], "csrf": csrf[1]})
    assert response.status_code == 303
    return client


def test_api_reads_never_show_a_masked_value(api: Api) -> None:
    """List, detail, groups and export scrub the payload's secret out of every error text."""
    record = leaky_record()
    api.store.add([record])
    texts = {
        "list": api.viewer.get("/api/v1/dead-letters").text,
        "detail": api.viewer.get(f"/api/v1/dead-letters/{record.id}").text,
        "groups": api.viewer.get("/api/v1/groups").text,
        "export": api.viewer.get("/api/v1/export").text,
    }
    for name, text in texts.items():
        assert "***" in text, name
        assert SECRET not in text, name


def test_console_pages_never_show_a_masked_value(api: Api) -> None:
    """Overview, list, groups and detail pages show the mask instead of the secret."""
    record = leaky_record()
    api.store.add([record])
    with httpx.Client(base_url=api.url, timeout=30) as client:
        _console(api, client)
        for path in ("/", "/dead-letters", "/groups", f"/dead-letters/{record.id}"):
            page = client.get(path)
            assert page.status_code == 200, path
            assert SECRET not in page.text, path
            assert "bad password" in page.text, path


def test_search_cannot_confirm_a_masked_value(api: Api) -> None:
    """A search for the secret finds nothing, nor counts it; other words still match."""
    api.store.add([leaky_record()])
    for path in ("/api/v1/dead-letters", "/api/v1/groups"):
        body = api.viewer.get(path, params={"q": "hunter2"}).json()
        items = body["items"] if isinstance(body, dict) else body
        assert items == []
    dry = api.operator.post(
        "/api/v1/dead-letters/retry", json={"filter": {"q": "hunter2"}, "dry_run": True}
    ).json()
    assert dry["matched"] == 0
    found = api.viewer.get("/api/v1/dead-letters", params={"q": "bad password"}).json()
    assert len(found["items"]) == 1
    assert "hunter2" not in api.viewer.get("/api/v1/export", params={"q": "hunter2"}).text
