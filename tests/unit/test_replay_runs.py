"""Replay runs kept in the store: started, followed, stopped from elsewhere, interrupted."""

from __future__ import annotations

from datetime import timedelta

from redrive import DeadLetterQueue
from redrive.models import utcnow
from redrive.service import ReplayOptions, make_filter
from redrive.service.runs import ReplayRuns, filter_from_dict
from redrive.stores.sqlite import SQLiteStore
from tests.factories import make_record
from tests.helpers import wait_for


def _seed(store: SQLiteStore, n: int, **fields: object) -> list[str]:
    records = [make_record(**fields) for _ in range(n)]  # type: ignore[arg-type]
    store.add(records)
    return [r.id for r in records]


def test_a_run_replays_its_plan_and_is_kept(sqlite_store: SQLiteStore) -> None:
    """A run replays what its plan counted and stays in the store with its tally."""
    _seed(sqlite_store, 3, topic="a")
    _seed(sqlite_store, 2, topic="b")
    dlq = DeadLetterQueue(sqlite_store)
    plan = dlq.plan(make_filter(topic="a", status="dead"))
    options = ReplayOptions(wait=timedelta(seconds=0))
    run = ReplayRuns(dlq).start(plan, options, actor="me", background=False)
    assert (run["state"], run["count"], run["scheduled"], run["left"]) == ("done", 3, 3, 0)
    assert dlq.count(topic="b", status="dead") == 2
    [listed] = ReplayRuns(DeadLetterQueue(sqlite_store)).list()
    assert listed["id"] == run["id"] and listed["actor"] == "me"
    assert "replay run" in str(dlq.audit(limit=1)[0].detail.get("note"))


def test_a_run_stops_when_asked_from_another_process_view(sqlite_store: SQLiteStore) -> None:
    """Stop, asked through another ReplayRuns on the same store, ends a paced run early
    and leaves the rest dead."""
    _seed(sqlite_store, 6)
    dlq = DeadLetterQueue(sqlite_store)
    runs = ReplayRuns(dlq)
    run = runs.start(dlq.plan(make_filter(status="dead")), ReplayOptions(rate=1.0), actor="me")
    wait_for(lambda: runs.get(run["id"])["done"] >= 1, what="the first wave")
    ReplayRuns(DeadLetterQueue(sqlite_store)).stop(run["id"], actor="other")
    final = wait_for(
        lambda: (r := runs.get(run["id"]))["state"] != "running" and r, what="the run to end"
    )
    assert final["state"] == "stopped" and final["aborted"] == "stopped by other"
    assert dlq.count(status="dead") == final["left"] > 0


def test_a_run_whose_server_is_gone_is_interrupted(sqlite_store: SQLiteStore) -> None:
    """A running run owned by a process that no longer exists is marked interrupted."""
    _seed(sqlite_store, 1)
    dlq = DeadLetterQueue(sqlite_store)
    runs = ReplayRuns(dlq)
    run = runs.start(
        dlq.plan(make_filter(status="dead")), ReplayOptions(wait=timedelta(0)), actor="me"
    )
    wait_for(lambda: runs.get(run["id"])["state"] != "running", what="the run to end")
    runs.update(run["id"], state="running", owner={"host": runs.owner["host"], "pid": 2**22 + 7})
    assert ReplayRuns(dlq).recover() == 1
    assert runs.get(run["id"])["state"] == "interrupted"


def test_filters_round_trip_through_the_store() -> None:
    """A run's stored filter reads back as the same Filter."""
    from redrive.service import filter_to_dict
    from redrive.stores.base import Filter

    where = make_filter(topic="t", status=["dead"], max_id="x").replace(updated_before=utcnow())
    assert filter_from_dict(filter_to_dict(where)) == where
    assert filter_from_dict({}) == Filter()
