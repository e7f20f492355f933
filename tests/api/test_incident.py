"""The incident workflow over HTTP: replay runs through the API and the console (plan,
start, follow, stop), the CLI seeing the same runs, group actions, and the list page's
orientation (default status, count, paging, known values, jump box)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from redrive.models import Status
from redrive.ops.api import create_app
from redrive.ops.cli.app import app as cli_app
from redrive.service import DeadLetterQueue
from redrive.service.runs import ReplayRuns
from tests.api.conftest import Api
from tests.api.server import Server
from tests.api.test_console_http import Browser, _csrf, browser, sign_in
from tests.helpers import wait_for

__all__ = ["browser"]


def _cli(api: Api, *args: str) -> str:
    url = str(getattr(api.store, "url", ""))  # postgres stores keep theirs masked
    result = CliRunner().invoke(cli_app, ["--store", url, *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def _ended(api: Api, run_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any]:
        run: dict[str, Any] = api.viewer.get(f"/api/v1/replays/{run_id}").json()
        return run if run["state"] != "running" else {}

    return wait_for(check, what="the run to end")


def test_api_plans_then_runs_a_replay(api: Api) -> None:
    """A dry run answers the plan; a run replays exactly the plan and is kept."""
    api.add(3, topic="a.events")
    api.add(2, topic="b.events")
    body = {"filter": {"topic": "a.events"}, "dry_run": True}
    plan = api.operator.post("/api/v1/replays", json=body).json()
    assert (plan["count"], plan["by_topic"]) == (3, {"a.events": 3})
    started = api.operator.post("/api/v1/replays", json={"filter": {"topic": "a.events"}})
    assert started.status_code == 202
    run = started.json()
    wait_for(lambda: api.service.count(status=Status.DEAD, topic="a.events") == 0, what="replay")
    listed = api.viewer.get("/api/v1/replays").json()
    assert [r["id"] for r in listed["items"]] == [run["id"]] and listed["next_cursor"] is None


@pytest.mark.parametrize("stopper", ["api", "cli"])
def test_a_run_is_stopped_from_the_api_or_the_cli(api: Api, stopper: str) -> None:
    """A paced run started through the API stops when the API or ``redrive replays stop``
    asks; the CLI lists the same run; the records not reached stay dead."""
    api.add(6)
    run = api.operator.post("/api/v1/replays", json={"filter": {}, "rate": 1}).json()
    wait_for(lambda: api.viewer.get(f"/api/v1/replays/{run['id']}").json()["done"] >= 1)
    if stopper == "api":
        assert api.operator.post(f"/api/v1/replays/{run['id']}/stop").status_code == 200
    else:
        _cli(api, "replays", "stop", run["id"])
    final = _ended(api, run["id"])
    assert final["state"] == "stopped"
    assert run["id"] in _cli(api, "replays", "list")
    assert api.service.count(status=Status.DEAD) == final["left"] > 0
    again = api.operator.post(f"/api/v1/replays/{run['id']}/stop")
    assert again.status_code == 409


def test_a_run_is_marked_interrupted_when_its_server_stops(api: Api) -> None:
    """Stopping the server that runs a replay leaves the run marked interrupted."""
    api.add(5)
    service = DeadLetterQueue(api.store)
    with Server(create_app(service)) as url:
        client = httpx.Client(base_url=url, headers=api.operator.headers, timeout=30)
        run = client.post("/api/v1/replays", json={"filter": {}, "rate": 0.5}).json()
        client.close()
    stored = ReplayRuns(service).get(run["id"])
    assert stored["state"] == "interrupted"
    assert "server stopped" in str(stored["aborted"])


def test_console_replays_all_matching_with_a_plan(api: Api, browser: Browser) -> None:
    """List → "Select all N matching" → the plan → start → the progress page → Stop."""
    api.add(4, topic="pay.events")
    api.add(1, topic="other")
    client = sign_in(api, "operator", browser)
    listing = client.get("/dead-letters?topic=pay.events").text
    assert "Select all 4 matching" in listing
    link = re.search(r'id="replay-all" href="([^"]+)"', listing)
    assert link is not None
    plan = client.get(link.group(1).replace("&amp;", "&")).text
    assert "Replay 4 dead letters" in plan and 'data-confirm="Replay 4 dead letters?' in plan
    form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', plan))
    answer = client.post("/replays", data={**form, "rate": "1"})
    assert answer.status_code == 303
    run_url = answer.headers["location"]
    assert "/replays/" in run_url and "new" not in run_url, answer.cookies
    progress = client.get(run_url).text
    assert "planned" in progress and "failed again" in progress and ">Stop<" in progress
    stopped = client.post(run_url + "/stop", data={"csrf": _csrf(progress)})
    assert stopped.status_code == 303
    run_id = run_url.rsplit("/", 1)[-1]
    final = _ended(api, run_id)
    assert final["state"] in ("stopped", "done")
    assert api.service.count(status=Status.DEAD, topic="other") == 1
    assert run_id in client.get("/replays").text


@pytest.mark.parametrize("action", ["resolve", "discard"])
def test_groups_page_resolves_and_discards_a_group(api: Api, browser: Browser, action: str) -> None:
    """Resolve group / Discard group change every dead letter of the group, after a
    confirmation that names the count."""
    api.add(3, fingerprint="a" * 16)
    api.add(1, fingerprint="b" * 16)
    client = sign_in(api, "operator", browser)
    page = client.get("/groups").text
    assert f'data-confirm="{action.capitalize()} 3 dead letters of' in page
    answer = client.post(f"/groups/{action}", data={"csrf": _csrf(page), "fingerprint": "a" * 16})
    assert answer.status_code == 303
    assert api.service.count(status=Status.DEAD) == 1


def test_list_defaults_to_dead_and_counts_matches(api: Api, browser: Browser) -> None:
    """The dead-letters page lists dead letters unless asked, and says how many match."""
    api.add(2)
    api.add(3, status=Status.RESOLVED)
    client = sign_in(api, "viewer", browser)
    page = client.get("/dead-letters").text
    assert page.count('class="badge s-dead"') == 2 and "s-resolved" not in page
    assert "2 matching" in page
    every = client.get("/dead-letters?status=any").text
    assert "5 matching" in every


def test_list_pages_forward_and_back(api: Api, browser: Browser) -> None:
    """First / previous / next links walk the pages and say where you are."""
    api.add(120)
    client = sign_in(api, "viewer", browser)
    first = client.get("/dead-letters").text
    assert "page 1 of 3" in first

    def follow(page: str, rel: str) -> str:
        link = re.search(rf'href="([^"]+)" rel="{rel}"', page)
        assert link is not None, rel
        return client.get(link.group(1).replace("&amp;", "&")).text

    second = follow(first, "next")
    third = follow(second, "next")
    assert "page 3 of 3" in third and 'rel="next"' not in third
    back = follow(third, "prev")
    assert "page 2 of 3" in back
    assert re.findall(r'data-id="([^"]+)"', back) == re.findall(r'data-id="([^"]+)"', second)


def test_filters_offer_known_values_and_ignore_case(api: Api, browser: Browser) -> None:
    """Topic/handler/error type datalists come from the store; the error type matches in
    any case."""
    api.add(2, topic="inventory.reserved", error_type="AttributeError")
    api.add(1, topic="orders.created", error_type="KeyError")
    client = sign_in(api, "viewer", browser)
    page = client.get("/dead-letters?error_type=attributeerror").text
    assert '<option value="inventory.reserved">' in page
    assert '<option value="AttributeError">' in page
    assert "2 matching" in page


def test_search_box_says_when_payload_search_is_off(api: Api, browser: Browser) -> None:
    """With masked fields configured, the search box says it looks in messages only."""
    page = sign_in(api, "viewer", browser).get("/dead-letters").text
    assert "payload search is off" in page


@pytest.mark.parametrize("field", ["id", "event_id", "key", "correlation_id"])
def test_jump_box_goes_to_the_record(api: Api, browser: Browser, field: str) -> None:
    """The jump box finds a record by id, event id, key or correlation id."""
    from dataclasses import replace

    from tests.factories import make_record

    record = make_record(correlation_id="corr-77")
    record = replace(record, event=replace(record.event, key="order-1002"))
    api.store.add([record])
    api.add(1)
    value = {
        "id": record.id,
        "event_id": record.event.id,
        "key": "order-1002",
        "correlation_id": "corr-77",
    }[field]
    client = sign_in(api, "viewer", browser)
    answer = client.get("/dead-letters/jump", params={"to": value})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/dead-letters/{record.id}"
    missing = client.get("/dead-letters/jump", params={"to": "nothing-like-it"})
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]


def test_workers_show_in_the_api_the_overview_and_metrics(api: Api, browser: Browser) -> None:
    """A live worker's heartbeat is listed; a handler with overdue scheduled records and no
    live worker is flagged as stalled in the API, the overview and /metrics."""
    from redrive.core.presence import Presence
    from tests.factories import ago, make_record

    Presence(api.store, api.service.clock, "w:1:x", lambda: ["t/app.live"], kind="worker").beat()
    api.store.add(
        [make_record(status=Status.SCHEDULED, next_attempt_at=ago(900), handler="app.gone")]
    )
    body = api.viewer.get("/api/v1/workers").json()
    assert body["live"] == 1 and body["items"][0]["handlers"] == ["t/app.live"]
    assert [s["handler"] for s in body["stalled"]] == ["app.gone"]
    page = sign_in(api, "viewer", browser).get("/").text
    assert "1 live worker" in page and 'data-stalled="orders.created/app.gone"' in page
    metrics = api.anonymous.get("/metrics").text
    assert "redrive_workers_live 1.0" in metrics
    assert 'redrive_stalled_records{handler="app.gone",topic="orders.created"} 1.0' in metrics


def test_audit_page_reads_as_sentences_with_links_and_filters(api: Api, browser: Browser) -> None:
    """Each audit entry is a sentence with its records linked; action/actor filters
    narrow the page."""
    records = api.add(2)
    api.service.resolve([records[0].id], actor="alice", note="refunded")
    api.service.delete([records[1].id], actor="bob")
    client = sign_in(api, "viewer", browser)
    page = client.get("/audit").text
    assert "<strong>alice</strong> resolved 1 record" in page and "“refunded”" in page
    assert f'href="/dead-letters/{records[1].id}"' in page
    only = client.get("/audit?action=delete").text
    assert "<strong>bob</strong> deleted 1 record" in only and "alice" not in only
    assert "alice" not in client.get("/audit?actor=bob").text
    assert "No actions match" in client.get("/audit?actor=nobody").text
