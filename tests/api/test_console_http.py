"""The console over plain HTTP: sign-in, cookies, CSRF, roles and security headers."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from redrive.models import Status
from tests.api.conftest import Api

Browser = Callable[[], httpx.Client]


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


@pytest.fixture
def browser(api: Api) -> Browser:
    """Makes cookie-keeping clients (like a browser) and closes them after the test."""
    return api.client


def sign_in(api: Api, role: str, browser: Browser) -> httpx.Client:
    """A browser-like client signed in with the token of ``role``."""
    client = browser()
    form = client.get("/signin")
    response = client.post("/signin", data={"token": api.tokens[role], "csrf": _csrf(form.text)})
    assert response.status_code == 303
    return client


def test_pages_send_strangers_to_sign_in(api: Api, browser: Browser) -> None:
    """Without a session, a page redirects to the sign-in form and remembers where to go."""
    response = api.anonymous.get("/dead-letters?status=dead")
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=%2Fdead-letters%3Fstatus%3Ddead"


def test_session_cookie_is_httponly_and_strict(api: Api, browser: Browser) -> None:
    """The session cookie cannot be read by scripts nor sent cross-site."""
    client = browser()
    form = client.get("/signin")
    data = {"token": api.tokens["viewer"], "csrf": _csrf(form.text)}
    response = client.post("/signin", data=data)
    cookie = response.headers["set-cookie"]
    assert "redrive_session=" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")


def test_sign_in_with_a_wrong_token_is_refused(api: Api, browser: Browser) -> None:
    """A wrong token shows the form again with a message and sets no session."""
    client = browser()
    form = client.get("/signin")
    response = client.post("/signin", data={"token": "rdv_nope", "csrf": _csrf(form.text)})
    assert response.status_code == 401
    assert "not valid" in response.text
    assert "redrive_session" not in client.cookies


def test_sign_in_without_the_form_value_is_refused(api: Api, browser: Browser) -> None:
    """A sign-in post without the double-submit value (a cross-site post) is refused."""
    response = api.anonymous.post("/signin", data={"token": api.tokens["admin"], "csrf": "x"})
    assert response.status_code == 401
    assert "expired" in response.text


def test_action_without_csrf_is_403(api: Api, browser: Browser) -> None:
    """A form post with the wrong CSRF value changes nothing."""
    [record] = api.add()
    client = sign_in(api, "operator", browser)
    response = client.post(
        f"/dead-letters/{record.id}/action", data={"action": "resolve", "csrf": "forged"}
    )
    assert response.status_code == 403
    assert api.service.get(record.id).status == Status.DEAD


def test_viewer_cannot_act_from_the_console(api: Api, browser: Browser) -> None:
    """A viewer's form post is refused with 403."""
    [record] = api.add()
    client = sign_in(api, "viewer", browser)
    csrf = _csrf(client.get(f"/dead-letters/{record.id}").text)
    response = client.post(
        f"/dead-letters/{record.id}/action", data={"action": "retry", "csrf": csrf}
    )
    assert response.status_code == 403
    assert api.service.get(record.id).status == Status.DEAD


def test_action_answers_json_for_the_script(api: Api, browser: Browser) -> None:
    """With Accept: application/json the action answers the new status and buttons."""
    [record] = api.add()
    client = sign_in(api, "operator", browser)
    csrf = _csrf(client.get(f"/dead-letters/{record.id}").text)
    response = client.post(
        f"/dead-letters/{record.id}/action",
        data={"action": "retry", "csrf": csrf},
        headers={"Accept": "application/json"},
    )
    assert response.json()["status"] == "scheduled"
    assert response.json()["actions"] == ["resolve", "discard"]


def test_edited_payload_with_bad_json_is_422(api: Api, browser: Browser) -> None:
    """An edited payload that is not JSON is refused and the record stays dead."""
    [record] = api.add()
    client = sign_in(api, "operator", browser)
    csrf = _csrf(client.get(f"/dead-letters/{record.id}").text)
    response = client.post(
        f"/dead-letters/{record.id}/action",
        data={"action": "retry", "csrf": csrf, "payload": "{nope"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 422
    assert api.service.get(record.id).status == Status.DEAD


def test_revoking_the_token_ends_the_session(api: Api, browser: Browser) -> None:
    """A session stops working once its token is revoked."""
    client = sign_in(api, "viewer", browser)
    assert client.get("/").status_code == 200
    api.admin.delete("/api/v1/tokens/viewer-token")
    assert client.get("/").status_code == 303


@pytest.mark.parametrize("page", ["/", "/dead-letters", "/groups", "/audit", "/?range=7d"])
def test_pages_render_with_security_headers(api: Api, browser: Browser, page: str) -> None:
    """Every page renders and forbids inline scripts, framing and CDNs."""
    api.add(2, payload={"password": "hunter2"})
    response = sign_in(api, "viewer", browser).get(page)
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert "http" not in re.sub(r'href="/[^"]*"', "", response.text.split("<body>")[0])


def test_detail_page_masks_the_payload(api: Api, browser: Browser) -> None:
    """The detail page shows masked values only."""
    [record] = api.add(payload={"password": "hunter2", "n": 1})
    page = sign_in(api, "viewer", browser).get(f"/dead-letters/{record.id}").text
    assert "hunter2" not in page and "***" in page


def test_next_cannot_leave_the_console(api: Api, browser: Browser) -> None:
    """After sign-in, an outside 'next' URL is replaced by the overview."""
    client = browser()
    form = client.get("/signin")
    response = client.post(
        "/signin",
        data={"token": api.tokens["viewer"], "csrf": _csrf(form.text), "next": "//evil.example/"},
    )
    assert response.headers["location"] == "/"
