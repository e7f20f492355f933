"""Worker heartbeats: written while a scheduler runs, removed on a clean stop; stalled
records are those overdue with no live worker for their handler."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from redrive import EventBus
from redrive.core.presence import LIVE_FOR, Presence
from redrive.models import Status, utcnow
from redrive.service import DeadLetterQueue
from redrive.stores.sqlite import SQLiteStore
from redrive.testing import FakeClock
from tests.factories import ago, make_record
from tests.helpers import eventually


async def test_a_running_bus_is_a_live_worker_until_it_stops(sqlite_store: SQLiteStore) -> None:
    """An EventBus's scheduler writes a heartbeat naming its handlers, and deletes it
    when it stops."""
    bus = EventBus(sqlite_store)

    @bus.handler("orders.created")
    async def send(event: object) -> None:
        pass

    dlq = DeadLetterQueue(sqlite_store)
    async with bus:
        [worker] = await eventually(dlq.workers)
        assert worker["live"] and worker["kind"] == "app"
        assert any(name.startswith("orders.created/") for name in worker["handlers"])
    assert dlq.workers() == []


def test_a_silent_worker_is_not_live(sqlite_store: SQLiteStore) -> None:
    """A heartbeat older than LIVE_FOR counts as not live."""
    clock = FakeClock()
    presence = Presence(sqlite_store, clock, "h:1:x", lambda: ["t/h"], kind="worker")
    presence.beat()
    clock.advance(LIVE_FOR.total_seconds() + 1)
    [worker] = DeadLetterQueue(sqlite_store, clock=clock).workers()
    assert worker["live"] is False


def test_overdue_scheduled_records_without_a_worker_are_stalled(sqlite_store: SQLiteStore) -> None:
    """Scheduled records due 10 minutes ago with no live worker for the handler stall;
    a live worker for that handler clears it."""
    sqlite_store.add(
        [
            make_record(
                status=Status.SCHEDULED, next_attempt_at=ago(600), handler="app.h", fingerprint="a"
            ),
            make_record(status=Status.SCHEDULED, next_attempt_at=utcnow(), fingerprint="b"),
        ]
    )
    dlq = DeadLetterQueue(sqlite_store)
    [item] = dlq.stalled(timedelta(minutes=5))
    assert (item.handler, item.count) == ("app.h", 1)
    presence = Presence(sqlite_store, dlq.clock, "h:2:y", lambda: ["orders.created/app.h"])
    presence.beat()
    assert dlq.stalled(timedelta(minutes=5)) == []


def test_summary_counts_outcomes() -> None:
    """The worker's exit line counts what it ran by outcome."""
    presence = Presence.__new__(Presence)
    presence.records_run, presence.outcomes = 3, {"resolved": 2, "dead": 1}
    assert presence.summary() == "ran 3: 2 resolved, 1 dead, 0 to retry"
    assert asyncio.iscoroutinefunction(Presence.stop)


def test_the_stalled_rule_fires_on_stalled_records() -> None:
    """The ``stalled`` alert rule warns when a topic has stalled records."""
    from redrive.ops.alerts.rules import Measurement, TopicRules, describe, evaluate

    finding = evaluate(TopicRules(), Measurement(stalled=3))["stalled"]
    assert finding.severity == "warning"
    assert "3 scheduled records overdue" in describe("t", finding, TopicRules())
    assert evaluate(TopicRules(stalled=None), Measurement(stalled=3)).get("stalled") is None
