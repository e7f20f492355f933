"""A plan bounds the change that follows it: nothing that changed after it is touched."""

from __future__ import annotations

from redrive import DeadLetterQueue, Status
from redrive.stores.base import Filter
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
    now = clock.advance(5)  # then its last retry fails: it is dead, after the plan
    (claimed,) = sqlite_store.claim_due(now=now, lease_until=now, owner="w", limit=1)
    died = claimed.replace(status=Status.DEAD, dead_at=now, updated_at=now, lease_owner=None)
    assert sqlite_store.save(died, lease_owner="w")
    report = dlq.replay(where=plan.where)
    assert report.scheduled == 1
    assert sqlite_store.get(later.id).status == Status.DEAD  # type: ignore[union-attr]
