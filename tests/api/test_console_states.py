"""The console's pages in every state: the detail page of records in every status and after
every action, and console errors as HTML pages with a way back."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from redrive.models import Status
from redrive.service import DeadLetterQueue
from tests.api.conftest import Api
from tests.api.test_console_http import Browser, _csrf, browser, sign_in

__all__ = ["browser"]  # the fixture, imported so pytest finds it here

Action = Callable[[httpx.Client, str, str], httpx.Response]


def _form(client: httpx.Client, url: str, csrf: str, **data: object) -> httpx.Response:
    return client.post(url, data={"csrf": csrf, **data}, follow_redirects=False)


ACTIONS: dict[str, Action] = {
    "retry": lambda c, t, rid: _form(c, f"/dead-letters/{rid}/action", t, action="retry"),
    "retry-patch": lambda c, t, rid: _form(
        c,
        f"/dead-letters/{rid}/action",
        t,
        action="retry",
        payload=json.dumps({"order_id": 2}),
    ),
    "resolve": lambda c, t, rid: _form(c, f"/dead-letters/{rid}/action", t, action="resolve"),
    "discard": lambda c, t, rid: _form(c, f"/dead-letters/{rid}/action", t, action="discard"),
    "group-retry": lambda c, t, rid: _form(c, "/groups/retry", t, fingerprint="f" * 16),
    "bulk-retry": lambda c, t, rid: _form(c, "/bulk", t, action="retry", ids=rid),
    "bulk-resolve": lambda c, t, rid: _form(c, "/bulk", t, action="resolve", ids=rid),
    "bulk-discard": lambda c, t, rid: _form(c, "/bulk", t, action="discard", ids=rid),
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_detail_page_renders_after_every_action(api: Api, browser: Browser, action: str) -> None:
    """After any operator action, the record's detail page renders with the action in its
    timeline (operator entries have no duration)."""
    [record] = api.add()
    client = sign_in(api, "admin", browser)
    csrf = _csrf(client.get(f"/dead-letters/{record.id}").text)
    answer = ACTIONS[action](client, csrf, record.id)
    assert answer.status_code == 303, answer.text
    page = client.get(f"/dead-letters/{record.id}")
    assert page.status_code == 200, page.text
    kind = "replay" if "retry" in action else action.split("-")[-1]
    assert f"<strong>{kind}</strong>" in page.text
    assert "by admin-token" in page.text


@pytest.mark.parametrize("status", list(Status))
def test_detail_page_renders_in_every_status(api: Api, browser: Browser, status: Status) -> None:
    """A record in any status has a detail page."""
    [record] = api.add(status=status)
    page = sign_in(api, "viewer", browser).get(f"/dead-letters/{record.id}")
    assert page.status_code == 200, page.text
    assert f'class="badge big s-{status.value}"' in page.text


@pytest.mark.parametrize("path", ["/no-such-page", "/dead-letters/" + "x" * 80, "/groups?status=x"])
def test_console_errors_are_html_pages(api: Api, browser: Browser, path: str) -> None:
    """An error on a console page is an HTML page with a link back, not problem+json."""
    response = sign_in(api, "viewer", browser).get(path)
    assert response.status_code in (404, 422)
    assert response.headers["content-type"].startswith("text/html")
    assert 'href="/dead-letters">Back to the dead letters' in response.text


def test_api_errors_stay_problem_documents(api: Api) -> None:
    """Errors under /api/v1 keep their problem+json answers."""
    response = api.viewer.get("/api/v1/dead-letters/" + "x" * 80)
    assert response.headers["content-type"].startswith("application/problem+json")


def test_favicon_is_served(api: Api) -> None:
    """The console has an icon (no 404 on every page)."""
    response = api.anonymous.get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")


def test_detail_times_say_utc(api: Api, browser: Browser) -> None:
    """Times on the detail page carry a UTC label."""
    [record] = api.add()
    page = sign_in(api, "viewer", browser).get(f"/dead-letters/{record.id}").text
    assert f"{record.created_at:%Y-%m-%d %H:%M:%S} UTC" in page


def test_validation_details_have_no_pydantic_prefix(api: Api) -> None:
    """A 422 from a model validator reads as our sentence, without "Value error,"."""
    response = api.operator.post("/api/v1/dead-letters/retry", json={})
    assert response.status_code == 422
    assert "Value error" not in response.json()["detail"]


def test_token_use_is_noted(api: Api) -> None:
    """A request with a token sets the token's last use."""
    from redrive.ops.auth import Tokens

    api.viewer.get("/api/v1/stats")
    [info] = [t for t in Tokens(api.service).list() if t.name == "viewer-token"]
    assert info.last_used_at is not None


def test_metrics_off_is_explained() -> None:
    """Without metrics, /metrics answers a problem that says why, not a bare 404."""
    from redrive.ops.api import create_app
    from redrive.testing import MemoryStore
    from tests.api.server import Server

    with Server(create_app(DeadLetterQueue(MemoryStore()), metrics=False)) as url:
        response = httpx.get(url + "/metrics")
    assert response.status_code == 404
    assert "metrics" in response.json()["detail"]


def _crawl(client: httpx.Client, limit: int = 400) -> dict[str, int]:
    """Every console page reachable by links from the overview, with its status."""
    import html
    import re

    seen: dict[str, int] = {}
    queue = ["/"]
    while queue and len(seen) < limit:
        url = queue.pop(0)
        if url in seen:
            continue
        response = client.get(url)
        seen[url] = response.status_code
        if not response.headers.get("content-type", "").startswith("text/html"):
            continue
        for link in re.findall(r'href="([^"#]*)"', response.text):
            link = html.unescape(link)
            if link.startswith("/") and not link.startswith(("//", "/static/", "/api/")):
                queue.append(link)
    return seen


def _seed_every_state(api: Api, client: httpx.Client) -> None:
    """Records in every status, some with operator history, and an audit trail."""
    for status in Status:
        api.add(2, status=status)
    records = api.add(4, fingerprint="g" * 16, topic="payments.captured")
    csrf = _csrf(client.get("/dead-letters").text)
    for name, record in zip(("retry", "retry-patch", "resolve", "discard"), records, strict=True):
        ACTIONS[name](client, csrf, record.id)
    ACTIONS["group-retry"](client, csrf, records[0].id)


@pytest.mark.parametrize("state", ["empty", "every-status"])
def test_every_console_link_answers_without_5xx(api: Api, browser: Browser, state: str) -> None:
    """Walking every link of the console from the overview never hits a server error."""
    client = sign_in(api, "admin", browser)
    if state == "every-status":
        _seed_every_state(api, client)
    seen = _crawl(client)
    assert len(seen) > (5 if state == "empty" else 15)
    errors = {url: status for url, status in seen.items() if status >= 500}
    assert not errors


def test_retry_says_when_no_worker_runs_the_handler(api: Api, browser: Browser) -> None:
    """After a retry in the console, the message says when no live worker would run it."""
    [record] = api.add()
    client = sign_in(api, "operator", browser)
    csrf = _csrf(client.get(f"/dead-letters/{record.id}").text)
    answer = client.post(
        f"/dead-letters/{record.id}/action",
        data={"csrf": csrf, "action": "retry"},
        headers={"Accept": "application/json"},
    )
    assert "No live worker runs app.send_receipt" in answer.json()["message"]
