"""Console pages given what is not there or not valid: an unknown record or replay run, a
filter that cannot be read, and replay forms with bad numbers or nothing left to replay.
Each answers a page that says what is wrong, never a stack trace, and changes nothing."""

from __future__ import annotations

import html

import httpx
import pytest

from redrive.models import Status
from tests.api.conftest import Api
from tests.api.test_console_http import Browser, _csrf, sign_in

MISSING_ID = "0190aaaa-0000-7000-8000-000000000000"
EXPECTED_TIME = "expected an ISO-8601 time or an age such as 2h or 7d"


@pytest.fixture
def browser(api: Api) -> Browser:
    """Makes cookie-keeping clients (like a browser) and closes them after the test."""
    return api.client


@pytest.fixture
def operator(api: Api, browser: Browser) -> httpx.Client:
    """A browser signed in as an operator."""
    return sign_in(api, "operator", browser)


def text(response: httpx.Response) -> str:
    """The page's text with HTML entities decoded (quotes in messages are escaped)."""
    return html.unescape(response.text)


def test_an_unknown_record_page_is_404(api: Api, operator: httpx.Client) -> None:
    """The detail page of an id that is not in the store is a 404 page saying so."""
    response = operator.get(f"/dead-letters/{MISSING_ID}")
    assert response.status_code == 404
    assert MISSING_ID in text(response) and "Traceback" not in response.text


def test_an_unknown_replay_run_is_404(api: Api, operator: httpx.Client) -> None:
    """A replay run id that does not exist is a 404 page, not an error."""
    response = operator.get("/replays/no-such-run")
    assert response.status_code == 404
    assert "no-such-run" in text(response)


def test_stopping_an_unknown_run_says_why(api: Api, operator: httpx.Client) -> None:
    """Stop on a run that does not exist goes back with the reason as the message."""
    csrf = _csrf(operator.get("/replays").text)
    response = operator.post("/replays/no-such-run/stop", data={"csrf": csrf})
    assert response.status_code == 303
    assert "no-such-run" in text(operator.get(response.headers["location"]))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=zombie", "status: unknown status 'zombie'"),
        ("since=yesterday-ish", f"since: {EXPECTED_TIME}, got 'yesterday-ish'"),
    ],
)
def test_a_list_filter_that_cannot_be_read_is_shown_on_the_page(
    api: Api, operator: httpx.Client, query: str, message: str
) -> None:
    """The list page keeps its form and shows the filter's problem instead of rows."""
    [record] = api.add()
    response = operator.get(f"/dead-letters?{query}")
    assert response.status_code == 200
    page = text(response)
    assert message in page
    assert api.service.get(record.id).status is Status.DEAD  # nothing changed


def test_the_audit_page_with_a_bad_since_says_so(api: Api, operator: httpx.Client) -> None:
    """An unreadable ``since`` on the audit page is shown as its problem."""
    response = operator.get("/audit?since=soon")
    assert response.status_code == 200
    assert f"since: {EXPECTED_TIME}, got 'soon'" in text(response)


def test_the_replay_plan_with_a_bad_since_says_so(api: Api, operator: httpx.Client) -> None:
    """The plan page with an unreadable ``since`` shows the problem instead of a plan."""
    api.add()
    response = operator.get("/replays/new?since=later")
    assert f"since: {EXPECTED_TIME}, got 'later'" in text(response)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rate", "fast", "rate: expected a number, got 'fast'"),
        ("canary", "-3", "canary: expected a number from"),
        ("abort_percent", "nan", "abort on failure rate: expected a number from 0 to 100"),
    ],
)
def test_a_replay_with_a_bad_number_goes_back_with_the_reason(
    api: Api, operator: httpx.Client, field: str, value: str, message: str
) -> None:
    """A replay form with a rate, canary or abort percent out of range starts nothing and
    goes back to the plan with the reason."""
    [record] = api.add()
    csrf = _csrf(operator.get("/replays/new").text)
    response = operator.post("/replays", data={"csrf": csrf, "count": "1", field: value})
    assert response.status_code == 303
    assert "/replays/new" in response.headers["location"]
    assert message.split(" from")[0] in text(operator.get(response.headers["location"]))
    assert api.service.get(record.id).status is Status.DEAD


def test_a_replay_when_nothing_matches_any_more_says_so(api: Api, operator: httpx.Client) -> None:
    """The records planned were resolved meanwhile: the form goes back saying so."""
    [record] = api.add()
    csrf = _csrf(operator.get("/replays/new").text)
    api.service.resolve([record.id])
    response = operator.post("/replays", data={"csrf": csrf, "count": "1"})
    assert response.status_code == 303
    follow = text(operator.get(response.headers["location"]))
    assert "Nothing to replay: no dead letter matches any more." in follow
    assert api.service.get(record.id).status is Status.RESOLVED
