"""Safe replay in the service: merge patches, plans, canaries and the abort threshold,
with a real EventBus scheduler running the replayed records."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from redrive import EventBus
from redrive.models import Event, Status
from redrive.service import DeadLetterQueue, Filter, ReplayOptions
from redrive.service.replay import merge_patch
from redrive.testing import MemoryStore
from tests.factories import make_record

WAIT = timedelta(seconds=30)


# RFC 7386, appendix A (every example of the specification).
RFC_7386 = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC_7386)
def test_merge_patch_follows_rfc_7386(target: Any, patch: Any, expected: Any) -> None:
    """merge_patch gives the result the RFC's examples give."""
    assert merge_patch(target, patch) == expected


def test_merge_patch_leaves_the_input_alone() -> None:
    """The target is not changed in place."""
    target = {"a": {"b": 1}}
    merge_patch(target, {"a": {"b": 2}})
    assert target == {"a": {"b": 1}}


def test_plan_breaks_down_by_topic_and_group(memory_store: MemoryStore) -> None:
    """A plan counts dead letters by topic and group and changes nothing."""
    memory_store.add([make_record(topic="a", fingerprint="f1") for _ in range(3)])
    memory_store.add([make_record(topic="b", fingerprint="f2") for _ in range(2)])
    memory_store.add([make_record(topic="b", status=Status.RESOLVED)])
    plan = DeadLetterQueue(memory_store).plan(Filter())
    assert (plan.count, dict(plan.by_topic)) == (5, {"a": 3, "b": 2})
    assert [g.fingerprint for g in plan.groups] == ["f1", "f2"]
    assert memory_store.count(Filter(statuses=(Status.DEAD,))) == 5


def test_replay_of_a_plan_never_exceeds_it(memory_store: MemoryStore) -> None:
    """Records added after the plan are not replayed by a run of that plan."""
    memory_store.add([make_record() for _ in range(2)])
    dlq = DeadLetterQueue(memory_store)
    plan = dlq.plan(Filter())
    memory_store.add([make_record()])
    assert dlq.replay(where=plan.where).scheduled == 2


def handlers(bus: EventBus, fail: bool) -> None:
    """Subscribe the handler the records name; it fails on payloads marked bad."""

    def handle(event: Event) -> None:
        if fail and event.payload.get("bad"):
            raise ValueError("still broken")

    bus.subscribe("orders.created", handle, name="app.send_receipt")


async def replay_with_bus(memory_store: MemoryStore, options: ReplayOptions, *, fail: bool) -> Any:
    """Run a replay of every dead letter while a real scheduler runs the handler."""
    bus = EventBus(memory_store, poll_interval=0.05)
    handlers(bus, fail)
    async with bus:
        return await asyncio.to_thread(
            DeadLetterQueue(memory_store).replay, where=Filter(), options=options
        )


async def test_canary_passes_then_replays_the_rest(memory_store: MemoryStore) -> None:
    """When the canary succeeds, everything is replayed and watched to the end."""
    memory_store.add([make_record(payload={"bad": False}) for _ in range(6)])
    report = await replay_with_bus(memory_store, ReplayOptions(canary=2, wait=WAIT), fail=True)
    assert (report.scheduled, report.succeeded, report.aborted) == (6, 6, None)
    assert memory_store.count(Filter(statuses=(Status.RESOLVED,))) == 6


async def test_failing_canary_leaves_the_rest_dead(memory_store: MemoryStore) -> None:
    """When a canary record fails again, the others are not replayed."""
    memory_store.add([make_record(payload={"bad": True}) for _ in range(6)])
    report = await replay_with_bus(memory_store, ReplayOptions(canary=2, wait=WAIT), fail=True)
    assert report.aborted is not None and "canary" in report.aborted
    assert (report.scheduled, report.failed, report.remaining) == (2, 2, 4)
    assert memory_store.count(Filter(statuses=(Status.DEAD,))) == 6


async def test_abort_threshold_stops_a_bad_replay(memory_store: MemoryStore) -> None:
    """Above the failure rate, the replay stops after the first wave; the rest stay dead."""
    memory_store.add([make_record(payload={"bad": True}) for _ in range(150)])
    options = ReplayOptions(abort_on_failure_rate=0.2, wait=WAIT)
    report = await replay_with_bus(memory_store, options, fail=True)
    assert report.aborted is not None and "failure rate" in report.aborted
    assert (report.scheduled, report.remaining) == (100, 50)


async def test_abort_threshold_lets_a_good_replay_finish(memory_store: MemoryStore) -> None:
    """Below the failure rate, every record is replayed."""
    memory_store.add([make_record(payload={"bad": False}) for _ in range(120)])
    options = ReplayOptions(abort_on_failure_rate=0.2, wait=WAIT)
    report = await replay_with_bus(memory_store, options, fail=True)
    assert (report.scheduled, report.succeeded, report.aborted) == (120, 120, None)


def test_replay_writes_one_audit_entry(memory_store: MemoryStore) -> None:
    """A replay in several waves is one audit entry with the total count."""
    memory_store.add([make_record() for _ in range(5)])
    DeadLetterQueue(memory_store, actor="ann").replay(
        where=Filter(), options=ReplayOptions(rate=1e6)
    )
    entries = memory_store.list_audit(limit=10)
    assert [(e.action, e.actor, e.count) for e in entries] == [("retry", "ann", 5)]
