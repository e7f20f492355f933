"""Bulk retry, resolve and discard: by ids, by filter, dry runs, pacing, limits."""

from __future__ import annotations

import pytest

from redrive.models import Status
from tests.api.conftest import Api, due_times, on_postgres_too, problem


@on_postgres_too
def test_bulk_retry_by_ids_counts_each_outcome(api: Api) -> None:
    """Dead ids change, others are skipped, unknown ones are missing."""
    dead = api.add(2)
    [resolved] = api.add(status=Status.RESOLVED)
    ids = [r.id for r in dead] + [resolved.id, "ghost"]
    body = api.operator.post("/api/v1/dead-letters/retry", json={"ids": ids}).json()
    assert body == {"matched": 3, "changed": 2, "skipped": 1, "missing": 1, "dry_run": False}


@on_postgres_too
def test_bulk_resolve_by_filter_changes_only_matches(api: Api) -> None:
    """A filter selects by topic; other topics stay dead."""
    api.add(3, topic="payments")
    [other] = api.add(topic="orders")
    body = api.operator.post(
        "/api/v1/dead-letters/resolve", json={"filter": {"topic": "payments"}}
    ).json()
    assert body["changed"] == 3
    assert api.service.get(other.id).status == Status.DEAD


def test_bulk_discard_records_the_note_and_actor(api: Api) -> None:
    """The audit entry of a bulk change has the token name and the note."""
    records = api.add(2)
    api.operator.post(
        "/api/v1/dead-letters/discard", json={"ids": [r.id for r in records], "note": "bad batch"}
    )
    entry = api.viewer.get("/api/v1/audit").json()["items"][0]
    assert (entry["actor"], entry["count"], entry["detail"]["note"]) == (
        "operator-token",
        2,
        "bad batch",
    )


@pytest.mark.parametrize("action", ["retry", "resolve", "discard"])
def test_dry_run_changes_nothing(api: Api, action: str) -> None:
    """dry_run reports the counts and leaves every record as it was."""
    api.add(2)
    api.add(status=Status.RESOLVED)
    body = api.operator.post(
        f"/api/v1/dead-letters/{action}",
        json={
            "filter": {"topic": "orders.created", "status": ["dead", "resolved"]},
            "dry_run": True,
        },
    ).json()
    assert (body["matched"], body["changed"], body["skipped"], body["dry_run"]) == (3, 2, 1, True)
    assert api.service.count(status=Status.DEAD) == 2


@pytest.mark.parametrize("action", ["retry", "resolve", "discard"])
def test_a_filter_without_status_selects_dead_letters(api: Api, action: str) -> None:
    """A bulk filter without status matches dead letters only, as the CLI's default does."""
    api.add(2)
    api.add(status=Status.RESOLVED)
    body = api.operator.post(
        f"/api/v1/dead-letters/{action}",
        json={"filter": {"topic": "orders.created"}, "dry_run": True},
    ).json()
    assert (body["matched"], body["changed"], body["skipped"]) == (2, 2, 0)


def test_rate_spreads_replays_over_time(api: Api) -> None:
    """With rate=2/s, four records are due in two slices one second apart."""
    records = api.add(4)
    body = api.operator.post(
        "/api/v1/dead-letters/retry", json={"ids": [r.id for r in records], "rate": 2}
    ).json()
    assert body["changed"] == 4
    due = due_times(api, records)
    assert (due[2] - due[0]).total_seconds() >= 0.9
    assert due[0] == due[1] and due[2] == due[3]


def test_bulk_retry_with_patch_patches_each_payload(api: Api) -> None:
    """A patch in a bulk retry applies to every selected record."""
    records = api.add(2, payload={"order_id": 1, "region": "eu"})
    api.operator.post(
        "/api/v1/dead-letters/retry",
        json={"ids": [r.id for r in records], "patch": {"region": "us"}},
    )
    assert {api.service.get(r.id).payload["region"] for r in records} == {"us"}


@on_postgres_too
def test_filter_replay_honours_the_loop_guard(api: Api) -> None:
    """A bulk replay by filter skips records already replayed max_replays times."""
    api.add(replays=5)
    [fresh] = api.add()
    body = api.operator.post(
        "/api/v1/dead-letters/retry", json={"filter": {"status": ["dead"]}}
    ).json()
    assert body["changed"] == 1
    assert api.service.get(fresh.id).status == Status.SCHEDULED


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"ids": ["a"], "filter": {"topic": "x"}},
        {"filter": {}},
        {"ids": []},
        {"filter": {"status": ["sleeping"]}},
        {"ids": ["a"], "rate": 0},
    ],
)
def test_bad_selection_is_422(api: Api, body: dict[str, object]) -> None:
    """No selection, both selections, an empty filter or bad values are refused."""
    problem(api.operator.post("/api/v1/dead-letters/retry", json=body), 422)


def test_too_many_ids_is_422(api: Api) -> None:
    """More ids than max_bulk_ids (50 here) are refused; the detail suggests a filter."""
    body = problem(
        api.operator.post(
            "/api/v1/dead-letters/resolve", json={"ids": [f"id{i}" for i in range(51)]}
        ),
        422,
    )
    assert "filter" in body["detail"]
