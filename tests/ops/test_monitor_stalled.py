"""The ``stalled`` rule end to end: scheduled records overdue with no live worker for their
handler fire an alert from the monitor (the unit tests cover the rule and the query apart),
and a live worker's heartbeat resolves it."""

from __future__ import annotations

from datetime import timedelta

from redrive.core.presence import Presence
from redrive.models import Status
from redrive.service import DeadLetterQueue
from redrive.testing import FakeClock
from tests.factories import make_record
from tests.ops.conftest import Receiver
from tests.ops.test_monitor import QUIET, make_monitor


async def test_overdue_records_without_a_worker_fire_then_a_worker_resolves(
    service: DeadLetterQueue, clock: FakeClock, receiver: Receiver
) -> None:
    """Two rfq records 20 minutes overdue (limit 10 minutes) and no worker: a stalled warning
    for rfq, while another handler's record due just now is not stalled. A worker for the
    rfq handler starts beating: the alert resolves."""
    overdue = clock.now() - timedelta(minutes=20)
    records = [
        make_record(topic="rfq", handler="app.quote", status=Status.SCHEDULED, next_attempt_at=at)
        for at in (overdue, overdue)
    ]
    # A fingerprint covers one topic and handler, as the engine makes them.
    other = make_record(
        topic="other", handler="app.other", status=Status.SCHEDULED, fingerprint="o" * 16
    )
    records.append(  # due just now: its handler is not stalled
        other.replace(next_attempt_at=clock.now())
    )
    service.store.add(records)
    rules = QUIET.replace(stalled=timedelta(minutes=10))
    monitor = make_monitor(service, clock, receiver, topics={"rfq": rules})

    [fired] = await monitor.evaluate_once()
    assert (fired.rule, fired.value, fired.topic) == ("stalled", 2, "rfq")  # not "other"
    assert receiver.bodies()[-1]["rule"] == "stalled"

    Presence(service.store, clock, "host:1:abc", lambda: ["rfq/app.quote"]).beat()
    [resolved] = await monitor.evaluate_once()
    assert (resolved.rule, resolved.topic) == ("stalled", "rfq")
    assert (resolved.to_dict()["status"], resolved.value) == ("resolved", 0)
