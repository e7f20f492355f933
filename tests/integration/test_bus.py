"""End to end: the EventBus on a real SQLite file, with its scheduler."""

from __future__ import annotations

import asyncio
import os
import socket
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from redrive import (
    DeadLetter,
    DeadLetterQueue,
    Event,
    EventBus,
    Hook,
    NonRetriableError,
    RetryAfter,
    RetryPolicy,
    Settings,
    Status,
    open_store,
)
from redrive.stores.base import Filter, Store
from redrive.testing import FakeClock
from tests.helpers import eventually

FAST = RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.05)


def records(store: Store, **criteria: Any) -> list[DeadLetter]:
    """Every record matching ``criteria`` (any status unless one is given)."""
    criteria.setdefault("status", None)
    return DeadLetterQueue(store).list(limit=100, **criteria).items


@pytest.fixture
def bus(sqlite_store: Store) -> EventBus:
    return EventBus(sqlite_store, poll_interval=0.05, version="1.4.2", service="orders-api")


class TestFirstAttempt:
    async def test_success_writes_nothing(self, bus: EventBus, sqlite_store: Store) -> None:
        """A handler that succeeds leaves no record, and publish returns the event."""
        seen: list[Event] = []
        bus.subscribe("orders.created", seen.append)
        event = await bus.publish("orders.created", {"order_id": 1}, key="o-1", headers={"h": "v"})
        assert seen == [event]
        assert event.payload == {"order_id": 1} and event.key == "o-1"
        assert sqlite_store.count(Filter()) == 0

    async def test_poison_message_is_dead_at_once_with_full_context(
        self, bus: EventBus, db_path: Path
    ) -> None:
        """A non-retriable error is dead at once, durably, with everything DESIGN names."""

        @bus.handler("orders.created", policy=RetryPolicy(max_attempts=5))
        async def charge(event: Event) -> None:
            raise NonRetriableError(f"order {event.payload['order_id']} has no customer")

        event = await bus.publish(
            "orders.created", {"order_id": 7}, correlation_id="c-1", tenant_id="acme", source="web"
        )
        other = open_store(f"sqlite:///{db_path}")  # a second connection: it is on disk
        (record,) = records(other)
        assert record.status == Status.DEAD and record.attempts == 1 and record.max_attempts == 5
        assert record.event == event
        assert record.handler.endswith("charge")
        assert record.error_type == "redrive.exceptions.NonRetriableError"
        assert record.error_message == "order 7 has no customer"
        assert "in charge" in record.traceback and "NonRetriableError" in record.traceback
        assert len(record.fingerprint) == 16
        assert [h.kind for h in record.history] == ["attempt"]
        assert record.history[0].duration is not None
        assert record.consumer == {
            "service": "orders-api",
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "version": "1.4.2",
        }
        assert record.dead_at == record.created_at and record.next_attempt_at is None
        other.close()

    async def test_retriable_failure_is_scheduled_before_publish_returns(
        self, bus: EventBus, sqlite_store: Store
    ) -> None:
        """A retriable failure is written as scheduled, with a backoff delay, by publish."""
        bus.subscribe(
            "t",
            _fail_with(ConnectionError("down")),
            name="h",
            policy=RetryPolicy(initial_delay=10, max_delay=20),
        )
        await bus.publish("t", {})
        (record,) = records(sqlite_store)
        assert record.status == Status.SCHEDULED
        assert record.next_attempt_at is not None
        delay = (record.next_attempt_at - record.created_at).total_seconds()
        assert 0 <= delay <= 10

    async def test_retry_after_sets_the_next_delay(self, sqlite_store: Store) -> None:
        """RetryAfter(seconds) from a handler decides when the retry is due."""
        clock = FakeClock()
        bus = EventBus(sqlite_store, clock=clock)
        bus.subscribe("t", _fail_with(RetryAfter(30)), name="h")
        await bus.publish("t", {})
        (record,) = records(sqlite_store)
        assert record.next_attempt_at is not None
        assert (record.next_attempt_at - clock.now()).total_seconds() == 30
        assert record.history[0].detail["retry_after"] == 30

    async def test_handler_timeout_is_a_retriable_failure(
        self, bus: EventBus, sqlite_store: Store
    ) -> None:
        """An attempt that runs past its timeout fails with TimeoutError and is retried."""
        never = asyncio.Event()

        async def slow(event: Event) -> None:
            await never.wait()

        bus.subscribe("t", slow, timeout=0.05)
        await bus.publish("t", {})
        (record,) = records(sqlite_store)
        assert record.status == Status.SCHEDULED and record.error_type == "TimeoutError"

    async def test_duplicate_subscription_is_refused(self, bus: EventBus) -> None:
        """One name can subscribe to one topic once."""
        bus.subscribe("t", print, name="h")
        with pytest.raises(Exception, match="already subscribed"):
            bus.subscribe("t", print, name="h")


class TestRetries:
    async def test_transient_failure_then_success(self, bus: EventBus, sqlite_store: Store) -> None:
        """A handler that fails once is retried by the scheduler and resolved."""
        calls = Counter[str]()

        @bus.handler("orders.created", policy=FAST)
        def flaky(event: Event) -> None:  # a plain def runs in a thread
            calls[event.id] += 1
            if calls[event.id] == 1:
                raise ConnectionError("inventory service unavailable")

        async with bus:
            event = await bus.publish("orders.created", {"order_id": 1})
            record = (await eventually(lambda: records(sqlite_store, status="resolved")))[0]
        assert calls[event.id] == 2
        assert record.attempts == 2 and record.resolved_at is not None
        assert [h.kind for h in record.history] == ["attempt", "success"]

    async def test_exhausted_retries_go_dead(self, bus: EventBus, sqlite_store: Store) -> None:
        """After max_attempts failures the record is dead, with one history entry each."""
        bus.subscribe("t", _fail_with(ConnectionError("down")), name="h", policy=FAST)
        async with bus:
            await bus.publish("t", {})
            (record,) = await eventually(lambda: records(sqlite_store, status="dead"))
        assert record.attempts == 3
        assert [h.detail["decision"] for h in record.history] == ["retry", "retry", "exhausted"]

    async def test_other_handlers_are_not_run_again(
        self, bus: EventBus, sqlite_store: Store
    ) -> None:
        """Only the failed handler runs on retry; its siblings ran once."""
        calls = Counter[str]()
        failed_once: set[str] = set()

        async def ok(event: Event) -> None:
            calls["ok"] += 1

        async def flaky(event: Event) -> None:
            calls["flaky"] += 1
            if not failed_once:
                failed_once.add(event.id)
                raise ConnectionError("down")

        bus.subscribe("t", ok, name="ok")
        bus.subscribe("t", flaky, name="flaky", policy=FAST)
        async with bus:
            await bus.publish("t", {})
            await eventually(lambda: records(sqlite_store, status="resolved"))
        assert calls == {"ok": 1, "flaky": 2}

    async def test_replay_of_a_dead_letter(self, bus: EventBus, sqlite_store: Store) -> None:
        """An operator's replay runs the handler again; after a fix it resolves."""
        fixed = False

        async def handler(event: Event) -> None:
            if not fixed:
                raise KeyError("customer_id")

        bus.subscribe("t", handler, name="h", policy=FAST)
        async with bus:
            await bus.publish("t", {})
            (dead,) = records(sqlite_store, status="dead")
            fixed = True
            result = DeadLetterQueue(sqlite_store, actor="ops").retry([dead.id])
            assert (result.matched, result.changed, result.skipped) == (1, 1, 0)
            (record,) = await eventually(lambda: records(sqlite_store, status="resolved"))
        assert record.replays == 1
        assert [h.kind for h in record.history] == ["attempt", "replay", "success"]
        again = DeadLetterQueue(sqlite_store).retry([dead.id])
        assert (again.changed, again.skipped) == (0, 1)

    async def test_policy_from_config_file(self, sqlite_store: Store, tmp_path: Path) -> None:
        """A per-handler policy in redrive.toml overrides the code's."""
        config = tmp_path / "redrive.toml"
        config.write_text("[handlers.h.policy]\nmax_attempts = 1\n")
        bus = EventBus(sqlite_store, settings=Settings.load(config))
        bus.subscribe(
            "t", _fail_with(ConnectionError("down")), name="h", policy=RetryPolicy(max_attempts=9)
        )
        await bus.publish("t", {})
        (record,) = records(sqlite_store)
        assert record.status == Status.DEAD and record.max_attempts == 1


class TestSchedulers:
    async def test_restart_picks_up_due_records(self, db_path: Path) -> None:
        """Records scheduled by a bus that stopped are run by the next one."""
        first = EventBus(open_store(f"sqlite:///{db_path}"))
        first.subscribe("t", _fail_with(ConnectionError("down")), name="h", policy=FAST)
        for n in range(20):
            await first.publish("t", {"n": n})
        first.store.close()

        store = open_store(f"sqlite:///{db_path}")
        second = EventBus(store, poll_interval=0.05)
        second.subscribe("t", lambda event: None, name="h", policy=FAST)
        async with second:
            await eventually(lambda: store.count(Filter(statuses=(Status.RESOLVED,))) == 20)
        assert store.count(Filter()) == 20
        store.close()

    async def test_two_schedulers_run_each_record_once(self, db_path: Path) -> None:
        """Two buses on one store file, racing, run each due record exactly once."""
        seed = EventBus(open_store(f"sqlite:///{db_path}"))
        seed.subscribe("t", _fail_with(ConnectionError("down")), name="h", policy=FAST)
        for n in range(200):
            await seed.publish("t", {"n": n})
        seed.store.close()

        runs = Counter[str]()
        buses = []
        for _ in range(2):
            bus = EventBus(open_store(f"sqlite:///{db_path}"), poll_interval=0.02, concurrency=10)
            bus.subscribe("t", lambda event: runs.update([event.id]), name="h", policy=FAST)
            buses.append(bus)
        async with buses[0], buses[1]:
            await eventually(
                lambda: buses[0].store.count(Filter(statuses=(Status.RESOLVED,))) == 200
            )
        assert len(runs) == 200 and set(runs.values()) == {1}
        assert buses[0].scheduler.owner != buses[1].scheduler.owner
        for bus in buses:
            bus.store.close()


def _fail_with(error: Exception):  # type: ignore[no-untyped-def]
    def handler(event: Event) -> None:
        raise error

    return handler


async def test_heartbeat_keeps_a_long_attempt_from_running_twice(db_path: Path) -> None:
    """An attempt that runs ten times its lease is renewed and never claimed elsewhere."""
    from datetime import timedelta

    from tests.factories import make_record

    store = open_store(f"sqlite:///{db_path}")
    store.add([make_record(status=Status.SCHEDULED, attempts=1)])
    release = asyncio.Event()
    runs = Counter[str]()

    async def slow(event: Event) -> None:
        runs[event.id] += 1
        await release.wait()

    buses = [
        EventBus(
            open_store(f"sqlite:///{db_path}"), poll_interval=0.02, lease=timedelta(seconds=0.3)
        )
        for _ in range(2)
    ]
    for bus in buses:
        bus.subscribe("orders.created", slow, name="app.send_receipt")
    async with buses[0], buses[1]:
        await eventually(lambda: sum(runs.values()) == 1)
        claimed_at = store.find(Filter(), limit=1).items[0].updated_at
        # Wait until the heartbeat has carried the lease past five lease lengths: the other
        # bus, polling every 20 ms, had that long to take the record if a lease had lapsed.
        await eventually(
            lambda: (
                (lease := store.find(Filter(), limit=1).items[0].lease_expires_at) is not None
                and lease > claimed_at + timedelta(seconds=1.5)
            )
        )
        release.set()
        await eventually(lambda: store.count(Filter(statuses=(Status.RESOLVED,))) == 1)
    assert list(runs.values()) == [1]
    for bus in buses:
        bus.store.close()
    store.close()


class TestEdges:
    async def test_plain_def_returning_a_coroutine_is_awaited(
        self, bus: EventBus, sqlite_store: Store
    ) -> None:
        """A lambda around an async handler runs it, and its failure is recorded."""

        async def real(event: Event) -> None:
            raise ValueError("bad order")

        bus.subscribe("t", lambda event: real(event), name="h")
        await bus.publish("t", {})
        (record,) = records(sqlite_store)
        assert (record.status, record.error_message) == (Status.DEAD, "bad order")

    async def test_attempts_lost_with_their_workers_end_dead(
        self, bus: EventBus, sqlite_store: Store
    ) -> None:
        """A record whose attempts all ended with their worker goes dead, not round again."""
        from tests.factories import make_record

        ran: list[str] = []
        bus.subscribe("orders.created", lambda event: ran.append(event.id), name="app.send_receipt")
        sqlite_store.add([make_record(status=Status.SCHEDULED, attempts=3)])
        assert await bus.scheduler.run_once() == 1
        (record,) = records(sqlite_store)
        assert ran == []
        assert (record.status, record.error_type) == (Status.DEAD, "redrive.exceptions.WorkerLost")
        assert [h.kind for h in record.history][-2:] == ["interrupted", "attempt"]

    async def test_secrets_never_reach_the_store_in_error_text(self, sqlite_store: Store) -> None:
        """With redact patterns, a secret quoted by an error is scrubbed before it is written."""
        bus = EventBus(sqlite_store, settings=Settings(redact=("password",)))

        def check(event: Event) -> None:
            raise ValueError(f"password {event.payload['user']['password']!r} is too weak")

        bus.subscribe("t", check, name="h")
        await bus.publish("t", {"user": {"password": "hunter2-secret"}})
        (record,) = records(sqlite_store)
        assert record.error_message == "password '***' is too weak"
        assert "hunter2-secret" not in record.traceback
        assert "hunter2-secret" not in repr(record.history)
        assert record.payload == {"user": {"password": "hunter2-secret"}}  # kept for replay

    async def test_an_enormous_retry_after_is_capped(self, sqlite_store: Store) -> None:
        """RetryAfter beyond what a date can hold is capped at a year, and recorded."""
        clock = FakeClock()
        bus = EventBus(sqlite_store, clock=clock)
        bus.subscribe("t", _fail_with(RetryAfter(1e12)), name="h")
        await bus.publish("t", {})
        (record,) = records(sqlite_store)
        assert record.next_attempt_at is not None
        assert (record.next_attempt_at - clock.now()).days == 366


async def test_one_unstorable_failure_does_not_fail_its_batch(sqlite_store: Store) -> None:
    """Concurrent failures share a commit; the one that cannot be stored fails alone."""
    bus = EventBus(sqlite_store)
    bus.subscribe("t", _fail_with(ValueError("bad")), name="h")
    from redrive import StoreError

    results = await asyncio.gather(
        bus.publish("t", {"n": 1}),
        # publish refuses such a payload up front; dispatch (the transports' way in) does not
        bus.dispatch(Event(topic="t", payload={(1, 2): "x"})),
        bus.publish("t", {"n": 3}),
        return_exceptions=True,
    )
    assert isinstance(results[1], StoreError)
    assert not isinstance(results[0], Exception) and not isinstance(results[2], Exception)
    assert sorted(r.payload["n"] for r in records(sqlite_store)) == [1, 3]


async def test_an_event_delivered_twice_is_one_dead_letter(bus: EventBus) -> None:
    """A source that hands the same event over again (a redelivery after a crash) gets the
    one open record back, with both attempts in its history, not a second dead letter."""

    @bus.handler("orders.created", policy=FAST)
    async def poison(event: Event) -> None:
        raise NonRetriableError("bad order")

    event = Event(topic="orders.created", payload={"order_id": 7})
    first = await bus.dispatch(event)
    second = await bus.dispatch(event, origin={"outbox_id": 1})
    assert [r.id for r in first] == [r.id for r in second]
    (stored,) = records(bus.store)
    assert stored.status == Status.DEAD
    assert [h.kind for h in stored.history] == ["attempt", "attempt"]


async def test_a_hook_sees_each_replayed_record_run(sqlite_store: Store) -> None:
    """``Hook.on_replay`` fires once when a replayed record runs again, naming who replayed it."""
    seen: list[tuple[list[str], str]] = []

    class Watch(Hook):
        def on_replay(self, records: Sequence[DeadLetter], actor: str) -> None:
            seen.append(([r.id for r in records], actor))

    bus = EventBus(sqlite_store, poll_interval=0.05, hooks=[Watch()])
    calls: list[int] = []

    @bus.handler("orders.created", policy=FAST)
    async def flaky(event: Event) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise NonRetriableError("not yet")

    async with bus:
        (record,) = await bus.dispatch(Event(topic="orders.created", payload={}))
        assert seen == []
        DeadLetterQueue(sqlite_store, actor="oncall").retry([record.id])
        await eventually(lambda: records(sqlite_store, status=Status.RESOLVED), timeout=10)
    assert seen == [([record.id], "oncall")]


async def test_error_text_that_is_not_unicode_is_kept_escaped(bus: EventBus) -> None:
    """A handler error with a lone surrogate (``os.fsdecode`` of a bad name) is recorded,
    the surrogate escaped and the rest of the text kept."""

    name = os.fsdecode(b"inv\xffoice.pdf")

    @bus.handler("orders.created", policy=FAST)
    async def fails(event: Event) -> None:
        raise NonRetriableError(f"cannot open {name}")

    (record,) = await bus.dispatch(Event(topic="orders.created", payload={}))
    stored = bus.store.get(record.id)
    assert stored is not None
    assert stored.error_message == "cannot open inv\\udcffoice.pdf"
    assert "inv\\udcffoice.pdf" in stored.traceback


@pytest.mark.parametrize(
    ("payload", "why"),
    [({"name": "inv\udcffoice"}, "surrogates not allowed"), ([[[]]] * 1, None)],
    ids=["lone-surrogate", "nested"],
)
async def test_a_payload_that_cannot_be_stored_fails_alone_with_a_store_error(
    bus: EventBus, payload: object, why: str | None
) -> None:
    """A payload no store can keep makes ``dispatch`` raise a StoreError naming why, never a
    raw Python error; a deeply nested one too."""
    from redrive.exceptions import StoreError

    @bus.handler("orders.created", policy=FAST)
    async def fails(event: Event) -> None:
        raise NonRetriableError("bad")

    if why is None:  # 3,000 levels deep: json.dumps would hit the recursion limit
        for _ in range(3000):
            payload = [payload]
    with pytest.raises(StoreError, match=why or "nest too deeply"):
        await bus.dispatch(Event(topic="orders.created", payload=payload))
    assert records(bus.store) == []


async def test_a_saturated_scheduler_waits_for_a_slot_instead_of_polling(db_path: Path) -> None:
    """With every slot busy, the scheduler waits for one to free up: it does not keep asking
    the store when work is due."""
    from redrive.stores.sqlite import SQLiteStore

    class Counting(SQLiteStore):
        looks = 0

        def next_due_at(self, handlers=None):  # type: ignore[no-untyped-def]
            Counting.looks += 1
            return super().next_due_at(handlers)

    store = Counting(db_path)
    bus = EventBus(store, poll_interval=0.5, concurrency=1)
    release = asyncio.Event()
    running = asyncio.Event()
    seen: Counter[str] = Counter()

    @bus.handler("orders.created", policy=RetryPolicy(max_attempts=3, initial_delay=0.0))
    async def slow(event: Event) -> None:
        seen[event.id] += 1
        if seen[event.id] == 1:
            raise ConnectionError("later")  # first attempt: scheduled for a retry now
        running.set()
        await release.wait()  # the retry holds the one slot

    await bus.dispatch(Event(topic="orders.created", payload={}))
    await bus.dispatch(Event(topic="orders.created", payload={}))  # due, but no free slot
    async with bus:
        await asyncio.wait_for(running.wait(), 10)
        before = Counting.looks
        await asyncio.sleep(1.0)  # the slot stays busy for a second: count the looks meanwhile
        looks = Counting.looks - before
        release.set()
    store.close()
    assert looks <= 4


async def test_retry_outcomes_are_group_committed(db_path: Path) -> None:
    """Concurrent retries share transactions: their outcomes reach the store in fewer
    ``save_many`` calls than there are outcomes, and every one is saved."""
    from redrive.stores.sqlite import SQLiteStore

    class Counting(SQLiteStore):
        calls: list[int] = []

        def save_many(self, outcomes):  # type: ignore[no-untyped-def]
            Counting.calls.append(len(outcomes))
            return super().save_many(outcomes)

    store = Counting(db_path)
    bus = EventBus(store, poll_interval=0.05, concurrency=50)
    seen: Counter[str] = Counter()

    @bus.handler("orders.created", policy=RetryPolicy(max_attempts=3, initial_delay=0.0))
    async def once(event: Event) -> None:
        seen[event.id] += 1
        if seen[event.id] == 1:
            raise ConnectionError("later")
        await asyncio.sleep(0)

    for _ in range(60):
        await bus.dispatch(Event(topic="orders.created", payload={}))
    async with bus:
        await eventually(lambda: store.count(Filter(statuses=(Status.RESOLVED,))) == 60, timeout=30)
    store.close()
    assert sum(Counting.calls) == 60
    assert len(Counting.calls) < 60


async def test_failures_outcomes_and_claims_share_one_transaction(db_path: Path) -> None:
    """The writer commits what is pending of every kind at once: while retries run and new
    failures come in, some SQLite transactions carry a new failure with an outcome or a
    claim (one fsync where there were two or three), and every record still ends right."""
    from contextlib import contextmanager

    from redrive.stores.sqlite import SQLiteStore

    scopes: list[list[str]] = []

    class Watching(SQLiteStore):
        @contextmanager
        def together(self):  # type: ignore[no-untyped-def]
            scopes.append([])
            with super().together():
                yield

        def add(self, records):  # type: ignore[no-untyped-def]
            scopes[-1].append("add")
            return super().add(records)

        def save_many(self, outcomes):  # type: ignore[no-untyped-def]
            scopes[-1].append("save")
            return super().save_many(outcomes)

        def claim_due(self, **kwargs):  # type: ignore[no-untyped-def]
            scopes[-1].append("claim")
            return super().claim_due(**kwargs)

    store = Watching(db_path)
    bus = EventBus(store, poll_interval=0.05)
    seen: Counter[int] = Counter()

    @bus.handler("orders.created", policy=RetryPolicy(max_attempts=3, initial_delay=0.0))
    async def once(event: Event) -> None:
        assert isinstance(event.payload, dict)
        seen[event.payload["i"]] += 1
        if seen[event.payload["i"]] == 1:
            raise ConnectionError("later")

    async def publisher(k: int) -> None:
        for i in range(k, 400, 20):
            await bus.publish("orders.created", {"i": i})

    async with bus:
        await asyncio.gather(*(publisher(k) for k in range(20)))
        await eventually(
            lambda: store.count(Filter(statuses=(Status.RESOLVED,))) == 400, timeout=60
        )
    assert store.count(Filter()) == 400 and all(n == 2 for n in seen.values())
    store.close()
    assert any("add" in kinds and len(set(kinds)) > 1 for kinds in scopes)
