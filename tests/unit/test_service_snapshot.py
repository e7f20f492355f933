"""A plan bounds the change that follows it: nothing that changed after it is touched."""

from __future__ import annotations

from redrive import DeadLetterQueue, Status
from redrive.stores.base import Change, Filter
from redrive.stores.sqlite import SQLiteStore
from redrive.testing import FakeClock
from tests.factories import make_record


def test_records_that_die_after_the_plan_are_not_replayed(
    sqlite_store: SQLiteStore, clock: FakeClock
) -> None:
    """A record that becomes dead after the plan was shown stays out of the replay."""
    at = clock.now()
    later, dead = make_record(status=Status.SCHEDULED, created_at=at), make_record(created_at=at)
    sqlite_store.add([later, dead])
    dlq = DeadLetterQueue(sqlite_store, clock=clock)
    plan = dlq.plan(Filter(statuses=(Status.DEAD,)))
    assert plan.count == 1
    clock.advance(5)
    died = Change(to=Status.DEAD, from_statuses=(Status.SCHEDULED,), now=clock.now())
    assert sqlite_store.transition([later.id], died) == [later.id]
    report = dlq.replay(where=plan.where)
    assert report.scheduled == 1
    assert sqlite_store.get(later.id).status == Status.DEAD  # type: ignore[union-attr]
