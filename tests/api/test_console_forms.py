"""The console's forms beyond the happy path: sign-out, delete, the edited-payload note,
and the messages a bulk or group form shows when it has nothing valid to act on."""

from __future__ import annotations

import pytest

from redrive.models import Status
from tests.api.conftest import Api
from tests.api.test_console_http import Browser, _csrf, sign_in


@pytest.fixture
def browser(api: Api) -> Browser:
    """Makes cookie-keeping clients (like a browser) and closes them after the test."""
    return api.client


def test_sign_out_ends_the_session(api: Api, browser: Browser) -> None:
    """Signing out sends the browser to the sign-in form and the old cookie opens nothing."""
    client = sign_in(api, "viewer", browser)
    csrf = _csrf(client.get("/").text)
    session = client.cookies["redrive_session"]
    response = client.post("/signout", data={"csrf": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/signin"
    stale = browser()
    stale.cookies.set("redrive_session", session)
    assert stale.get("/").status_code == 303  # back to sign-in: the session is gone


def test_admin_deletes_a_record_from_its_page(api: Api, browser: Browser) -> None:
    """delete (admin only) removes the record and answers ``deleted`` to the script."""
    [record] = api.add()
    client = sign_in(api, "admin", browser)
    csrf = _csrf(client.get(f"/dead-letters/{record.id}").text)
    response = client.post(
        f"/dead-letters/{record.id}/action",
        data={"action": "delete", "csrf": csrf, "note": "test data"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True, "message": "Deleted.", "redirect": "/dead-letters"}
    assert api.store.get(record.id) is None


def test_operator_cannot_delete(api: Api, browser: Browser) -> None:
    """delete needs the admin role: an operator's post is 403 and the record stays."""
    [record] = api.add()
    client = sign_in(api, "operator", browser)
    csrf = _csrf(client.get(f"/dead-letters/{record.id}").text)
    response = client.post(
        f"/dead-letters/{record.id}/action", data={"action": "delete", "csrf": csrf}
    )
    assert response.status_code == 403
    assert api.store.get(record.id) is not None


def test_a_note_with_a_nul_is_refused_before_anything_changes(api: Api, browser: Browser) -> None:
    """A note the store cannot keep is a 422 naming it; the record stays dead."""
    [record] = api.add()
    client = sign_in(api, "operator", browser)
    csrf = _csrf(client.get(f"/dead-letters/{record.id}").text)
    response = client.post(
        f"/dead-letters/{record.id}/action",
        data={"action": "resolve", "csrf": csrf, "note": "bad\x00note"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 422
    assert "The note: contains a NUL character" in response.text
    assert api.service.get(record.id).status is Status.DEAD


def test_an_unknown_record_is_404(api: Api, browser: Browser) -> None:
    """An action on an id that is not in the store answers 404 and says so."""
    [record] = api.add()
    client = sign_in(api, "operator", browser)
    csrf = _csrf(client.get(f"/dead-letters/{record.id}").text)
    response = client.post(
        "/dead-letters/0190aaaa-0000-7000-8000-000000000000/action",
        data={"action": "resolve", "csrf": csrf},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 404


def test_replacing_a_dict_payload_with_a_list_notes_the_whole_payload(
    api: Api, browser: Browser
) -> None:
    """A retry whose edit replaces the payload's type says the whole payload changed, and
    the replay runs with the new payload."""
    [record] = api.add(payload={"order_id": 1})
    client = sign_in(api, "operator", browser)
    csrf = _csrf(client.get(f"/dead-letters/{record.id}").text)
    response = client.post(
        f"/dead-letters/{record.id}/action",
        data={"action": "retry", "csrf": csrf, "payload": "[1, 2]"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert "edited payload (changed: the whole payload)" in response.json()["message"]
    assert api.service.get(record.id).payload == [1, 2]


def test_bulk_without_a_selection_asks_for_one(api: Api, browser: Browser) -> None:
    """A bulk form posted with no row selected changes nothing and says to select one."""
    [record] = api.add()
    client = sign_in(api, "operator", browser)
    csrf = _csrf(client.get("/dead-letters").text)
    response = client.post("/bulk", data={"action": "resolve", "csrf": csrf})
    assert response.status_code == 303
    assert "Select at least one record first." in client.get("/dead-letters").text
    assert api.service.get(record.id).status is Status.DEAD


def test_bulk_with_an_unstorable_id_says_which(api: Api, browser: Browser) -> None:
    """A selected id with a NUL is named in the message; nothing is resolved."""
    [record] = api.add()
    client = sign_in(api, "operator", browser)
    csrf = _csrf(client.get("/dead-letters").text)
    response = client.post(
        "/bulk", data={"action": "resolve", "csrf": csrf, "ids": [record.id, "x\x00"]}
    )
    assert response.status_code == 303
    assert "A selected id: contains a NUL character" in client.get("/dead-letters").text
    assert api.service.get(record.id).status is Status.DEAD


def test_group_action_with_an_unstorable_fingerprint_says_so(api: Api, browser: Browser) -> None:
    """A group form whose fingerprint has a NUL goes back to the groups with a message."""
    [record] = api.add()
    client = sign_in(api, "operator", browser)
    csrf = _csrf(client.get("/groups").text)
    response = client.post("/groups/resolve", data={"csrf": csrf, "fingerprint": "f\x00"})
    assert response.status_code == 303
    assert response.headers["location"] == "/groups"
    assert "The group: contains a NUL character" in client.get("/groups").text
    assert api.service.get(record.id).status is Status.DEAD
