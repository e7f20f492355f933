"""The consumer's ack, nak and term semantics on a real nats-server, and its store writes."""

from __future__ import annotations

import base64
import itertools
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from nats.js import api

from redrive import ConfigError, Event, Hook, RetryPolicy, Status
from redrive.stores.base import Filter
from redrive.stores.sqlite import SQLiteStore
from redrive.transports.nats import JetStreamConsumer
from tests.helpers import eventually
from tests.nats.names import Names
from tests.nats.support import consumer, dlq_messages, make_stream, publish, settled, wait

pytestmark = pytest.mark.nats

QUICK = RetryPolicy(max_attempts=5, initial_delay=0.05, multiplier=1.0, jitter="none")


async def test_transient_failures_then_success_are_acked_with_nothing_stored(
    nc: Any, nats_url: str, names: Names, sqlite_store: SQLiteStore
) -> None:
    """Two transient failures go back to the broker (nak) and the third delivery succeeds."""
    js = nc.jetstream()
    await make_stream(js, names)
    calls: list[Event] = []

    c = consumer(sqlite_store, nats_url, names)

    @c.handler(names.of("created"), policy=QUICK)
    async def bill(event: Event) -> None:
        calls.append(event)
        if len(calls) < 3:
            raise ConnectionError("downstream unavailable")

    async with c:
        seq = await publish(js, names.of("created"), {"order": 1})
        await eventually(lambda: len(calls) == 3, timeout=15)
        await wait(lambda: settled(js, names))
        stats = c.stats
    assert sqlite_store.count(Filter()) == 0
    assert stats["retries"] == 2 and stats["acked"] == 1 and stats["dead"] == 0
    assert {e.id for e in calls} == {f"{names.stream}:{seq}"}  # stable across deliveries
    assert calls[0].payload == {"order": 1}


@pytest.mark.parametrize(
    "retention",
    [api.RetentionPolicy.LIMITS, api.RetentionPolicy.WORK_QUEUE, api.RetentionPolicy.INTEREST],
)
async def test_poison_message_is_dead_at_once_with_a_dlq_copy_then_terminated(
    nc: Any,
    nats_url: str,
    names: Names,
    sqlite_store: SQLiteStore,
    retention: api.RetentionPolicy,
) -> None:
    """A non-retriable error: a dead record, then the DLQ copy, then a confirmed term."""
    js = nc.jetstream()
    await make_stream(js, names, retention)
    c = consumer(sqlite_store, nats_url, names)
    calls = 0

    @c.handler(names.of("created"), name="billing.bill", policy=QUICK)
    def bill(event: Event) -> None:
        nonlocal calls
        calls += 1
        raise KeyError("customer_id")

    async with c:  # on an interest stream, messages need the consumer to exist first
        headers = {"Nats-Msg-Id": "order-7", "Redrive-Correlation-Id": "corr-1", "X-Note": "é"}
        seq = await publish(js, names.of("created"), {"order": 7}, headers)
        (record,) = await eventually(lambda: sqlite_store.find(Filter(), limit=5).items)
        await wait(lambda: settled(js, names))
    assert calls == 1
    assert record.status == Status.DEAD and record.error_type == "KeyError"
    assert record.event.id == "order-7" and record.event.correlation_id == "corr-1"
    assert record.attempts == 1
    origin = dict(record.origin)
    assert {
        k: origin[k]
        for k in ("transport", "stream", "consumer", "sequence", "delivered", "subject")
    } == {
        "transport": "nats",
        "stream": names.stream,
        "consumer": names.durable,
        "sequence": seq,
        "delivered": 1,
        "subject": names.of("created"),
    }
    assert isinstance(origin["received_at"], str)
    (copy,) = await dlq_messages(js, f"{names.stream}_DLQ")
    assert copy.subject == f"dlq.{names.of('created')}"
    assert copy.data == b'{"order": 7}'
    h = copy.headers
    assert h["Redrive-Record-Id"] == record.id
    assert h["Redrive-Original-Subject"] == names.of("created")
    assert h["Redrive-Original-Stream"] == names.stream
    assert h["Redrive-Original-Sequence"] == str(seq)
    assert h["Redrive-Error-Type"] == "KeyError"
    assert h["Redrive-Fingerprint"] == record.fingerprint
    assert h["Redrive-Original-Msg-Id"] == "order-7"
    redrive_headers = {k: v for k, v in h.items() if k.startswith("Redrive-")}
    assert all(v.isascii() for v in redrive_headers.values())
    state = (await js.stream_info(names.stream)).state
    assert state.messages == (1 if retention == api.RetentionPolicy.LIMITS else 0)


async def test_exhausted_broker_retries_keep_the_policy_delays(
    nc: Any, nats_url: str, names: Names, sqlite_store: SQLiteStore
) -> None:
    """Short delays are naks with the policy's delay per delivery; the last attempt is dead."""
    js = nc.jetstream()
    await make_stream(js, names)
    policy = RetryPolicy(max_attempts=3, initial_delay=0.3, multiplier=2.0, jitter="none")
    seen: list[float] = []
    c = consumer(sqlite_store, nats_url, names)

    @c.handler(names.of("paid"), policy=policy)
    async def ship(event: Event) -> None:
        seen.append(time.monotonic())
        raise ConnectionError("carrier down")

    async with c:
        await publish(js, names.of("paid"), {"n": 1})
        (record,) = await eventually(lambda: sqlite_store.find(Filter(), limit=5).items)
        await wait(lambda: settled(js, names))
    assert len(seen) == 3
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6  # the broker honoured each nak(delay)
    assert record.status == Status.DEAD and record.attempts == 3
    assert record.origin["delivered"] == 3
    assert len(await dlq_messages(js, f"{names.stream}_DLQ")) == 1


async def test_long_delays_become_store_retries_and_the_message_is_acked(
    nc: Any, nats_url: str, names: Names, sqlite_store: SQLiteStore
) -> None:
    """A delay above broker_retry_max is a scheduled store record; the scheduler retries it."""
    js = nc.jetstream()
    await make_stream(js, names)
    policy = RetryPolicy(max_attempts=3, initial_delay=0.5, jitter="none")
    calls = 0
    c = consumer(sqlite_store, nats_url, names, broker_retry_max=0.1)

    @c.handler(names.of("paid"), policy=policy)
    async def ship(event: Event) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("carrier down")

    async with c:
        await publish(js, names.of("paid"), {"n": 1})
        (record,) = await eventually(lambda: sqlite_store.find(Filter(), limit=5).items)
        assert record.status == Status.SCHEDULED and record.next_attempt_at is not None
        await wait(lambda: settled(js, names))  # acked while the retry waits in the store
        await eventually(lambda: sqlite_store.count(Filter(statuses=(Status.RESOLVED,))) == 1)
    assert calls == 2
    assert c.stats["scheduled"] == 1 and c.stats["retries"] == 0


async def test_sibling_handlers_that_succeeded_do_not_run_again(
    nc: Any, nats_url: str, names: Names, sqlite_store: SQLiteStore
) -> None:
    """One of two handlers fails: its retry goes to the store, the other never re-runs."""
    js = nc.jetstream()
    await make_stream(js, names)
    runs = {"email": 0, "ledger": 0}
    c = consumer(sqlite_store, nats_url, names)

    @c.handler(names.of("created"), name="email", policy=QUICK)
    async def email(event: Event) -> None:
        runs["email"] += 1

    @c.handler(names.of("created"), name="ledger", policy=QUICK)
    async def ledger(event: Event) -> None:
        runs["ledger"] += 1
        if runs["ledger"] == 1:
            raise ConnectionError("ledger down")

    async with c:
        await publish(js, names.of("created"), {"n": 1})
        await eventually(lambda: sqlite_store.count(Filter(statuses=(Status.RESOLVED,))) == 1)
        await wait(lambda: settled(js, names))
    assert runs == {"email": 1, "ledger": 2}
    (record,) = sqlite_store.find(Filter(statuses=()), limit=5).items
    assert record.handler == "ledger"


async def test_a_body_that_is_not_json_is_dead_with_a_preview_never_a_crash(
    nc: Any, nats_url: str, names: Names, sqlite_store: SQLiteStore
) -> None:
    """Non-UTF-8 bytes: a non-retriable record with a preview and the bytes themselves."""
    js = nc.jetstream()
    await make_stream(js, names)
    calls = 0
    c = consumer(sqlite_store, nats_url, names)

    @c.handler(names.of("raw"), policy=QUICK)
    async def never(event: Event) -> None:
        nonlocal calls
        calls += 1

    raw = b"\xff\xfe not json"
    async with c:
        await publish(js, names.of("raw"), raw)
        await publish(js, names.of("raw"), {"fine": True})
        await eventually(lambda: calls == 1)
        (record,) = await eventually(lambda: sqlite_store.find(Filter(), limit=5).items)
        await wait(lambda: settled(js, names))
    assert record.status == Status.DEAD
    assert record.error_type.endswith("UndecodableMessage")
    assert "not UTF-8" in record.error_message and "\\xff\\xfe" in record.error_message
    assert record.payload["preview"].startswith("b'\\xff\\xfe not json'")
    assert base64.b64decode(record.origin["body_base64"]) == raw
    (copy,) = await dlq_messages(js, f"{names.stream}_DLQ")
    assert copy.data == raw


async def test_a_store_outage_naks_and_the_redelivery_records_once(
    nc: Any, nats_url: str, names: Names, db_path: Path
) -> None:
    """With the store locked, nothing is acked; once it is back, one record and one copy."""
    js = nc.jetstream()
    await make_stream(js, names)
    store = SQLiteStore(db_path, busy_timeout=0.1)
    calls = 0
    c = consumer(store, nats_url, names)

    @c.handler(names.of("created"), policy=QUICK)
    async def bill(event: Event) -> None:
        nonlocal calls
        calls += 1
        raise ValueError("bad order")

    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        async with c:
            blocker.execute("BEGIN EXCLUSIVE")
            await publish(js, names.of("created"), {"n": 1})
            await eventually(lambda: c.stats["store_errors"] >= 2)
            info = await js.consumer_info(names.stream, names.durable)
            assert info.num_ack_pending == 1  # never acked while the store is down
            blocker.execute("COMMIT")
            await eventually(lambda: store.count(Filter()) == 1)
            await wait(lambda: settled(js, names))
        assert calls >= 3
        (record,) = store.find(Filter(), limit=5).items
        assert record.status == Status.DEAD
        assert len(await dlq_messages(js, f"{names.stream}_DLQ")) == 1
    finally:
        blocker.close()
        store.close()


async def test_redrive_headers_fill_the_event(
    nc: Any, nats_url: str, names: Names, sqlite_store: SQLiteStore
) -> None:
    """Correlation id, tenant, source and key come from the Redrive-* headers."""
    js = nc.jetstream()
    await make_stream(js, names)
    seen: list[Event] = []
    c = consumer(sqlite_store, nats_url, names)
    c.subscribe(names.of("x"), seen.append, policy=QUICK)
    headers = {
        "Redrive-Correlation-Id": "c-1",
        "Redrive-Tenant-Id": "acme",
        "Redrive-Source": "shop",
        "Redrive-Key": "order-9",
        "Redrive-Occurred-At": "2026-11-01T10:00:00Z",
    }
    async with c:
        await publish(js, names.of("x"), [1, 2], headers)
        (event,) = await eventually(lambda: list(seen))
    assert (event.correlation_id, event.tenant_id, event.source, event.key) == (
        "c-1",
        "acme",
        "shop",
        "order-9",
    )
    assert event.occurred_at.isoformat().startswith("2026-11-01T10:00:00")
    assert event.payload == [1, 2]


async def test_a_failed_dlq_copy_naks_and_the_redelivery_joins_the_same_record(
    nc: Any, nats_url: str, names: Names, sqlite_store: SQLiteStore
) -> None:
    """Record written, DLQ copy refused: nak; the redelivery merges into that record."""
    from redrive.transports.nats.provision import provision

    js = nc.jetstream()
    await make_stream(js, names)
    c = consumer(sqlite_store, nats_url, names)
    c.subscribe(names.of("created"), _poison, name="bill", policy=QUICK)
    async with c:
        await js.delete_stream(f"{names.stream}_DLQ")  # the copy has nowhere to go
        await publish(js, names.of("created"), {"n": 1})
        await eventually(lambda: c.stats["store_errors"] >= 1)
        assert sqlite_store.count(Filter()) == 1
        await provision(js, c.options, max_attempts=c.max_attempts())  # the DLQ is back
        await wait(lambda: settled(js, names))
    (record,) = sqlite_store.find(Filter(statuses=()), limit=5).items
    assert record.status == Status.DEAD and len(record.history) >= 2  # merged, not duplicated
    assert len(await dlq_messages(js, f"{names.stream}_DLQ")) == 1


def _poison(event: Event) -> None:
    raise ValueError("bad order")


async def test_several_processes_on_one_durable_share_the_work(
    nc: Any, nats_url: str, names: Names, sqlite_store: SQLiteStore
) -> None:
    """Two consumers on one durable: every message handled, by one or the other."""
    js = nc.jetstream()
    await make_stream(js, names)
    seen: dict[str, list[int]] = {"a": [], "b": []}
    first, second = consumer(sqlite_store, nats_url, names), consumer(sqlite_store, nats_url, names)
    first.subscribe(names.of("n"), lambda e: seen["a"].append(e.payload), name="h")
    second.subscribe(names.of("n"), lambda e: seen["b"].append(e.payload), name="h")
    async with first, second:
        for n in range(40):
            await publish(js, names.of("n"), n)
        await eventually(lambda: set(seen["a"]) | set(seen["b"]) == set(range(40)))
        await wait(lambda: settled(js, names))
    # at least once: a delivery that outlived ack_wait on a loaded machine may come twice
    assert first.stats["acked"] + second.stats["acked"] >= 40
    assert sqlite_store.count(Filter(statuses=())) == 0


async def test_stats_and_the_dlq_depth_gauge(
    nc: Any, nats_url: str, names: Names, sqlite_store: SQLiteStore
) -> None:
    """consumer.stats counts outcomes; the collector exports the DLQ stream's depth."""
    from prometheus_client import CollectorRegistry

    from redrive.transports.nats.monitor import NatsCollector

    js = nc.jetstream()
    await make_stream(js, names)
    c = consumer(sqlite_store, nats_url, names)
    c.subscribe(names.of("created"), _poison, name="bill", policy=QUICK)
    c.subscribe(names.of("fine"), lambda e: None, name="ok", policy=QUICK)
    registry = CollectorRegistry()
    registry.register(NatsCollector(c))
    async with c:
        await publish(js, names.of("created"), {"n": 1})
        await publish(js, names.of("fine"), {"n": 2})
        await wait(lambda: settled(js, names))
        assert await c.dlq_depth() == 1
        stats = c.stats
    assert stats["processed"] == 2 and stats["acked"] == 1 and stats["dead"] == 1
    assert stats["dlq_published"] == 1 and stats["dlq_enabled"] is True
    assert stats["dlq_depth"] == 1 and stats["in_flight"] == 0
    dlq = f"{names.stream}_DLQ"
    assert registry.get_sample_value("redrive_nats_dlq_messages", {"stream": dlq}) == 1
    labels = {"stream": names.stream, "durable": names.durable, "outcome": "dead"}
    assert registry.get_sample_value("redrive_nats_messages_total", labels) == 1


async def test_a_handler_slower_than_ack_wait_is_kept_alive_by_heartbeats(
    nc: Any, nats_url: str, names: Names, sqlite_store: SQLiteStore
) -> None:
    """in_progress() heartbeats: a 2.5 s handler under a 1 s ack_wait runs once."""
    import asyncio

    js = nc.jetstream()
    await make_stream(js, names)
    calls = 0
    c = consumer(sqlite_store, nats_url, names, ack_wait=1.0)

    @c.handler(names.of("slow"), policy=QUICK)
    async def slow(event: Event) -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(2.5)  # the slow work itself, not a wait for something

    async with c:
        await publish(js, names.of("slow"), {"n": 1})
        await eventually(lambda: c.stats["acked"] == 1, timeout=20)
        info = await js.consumer_info(names.stream, names.durable)
    assert calls == 1 and info.num_redelivered == 0


class Seen(Hook):
    """Remembers what the hooks were told."""

    def __init__(self) -> None:
        self.succeeded: list[str] = []
        self.dead: list[str] = []

    def on_success(self, event: Event, handler: str, duration: float, record: Any) -> None:
        self.succeeded.append(handler)

    def on_dead(self, record: Any) -> None:
        self.dead.append(record.handler)


async def test_plain_def_handlers_timeouts_and_hooks_work_as_on_an_event_bus(
    nc: Any, nats_url: str, names: Names, sqlite_store: SQLiteStore
) -> None:
    """A sync handler runs in a thread; a per-handler timeout fails the attempt; hooks fire."""
    import asyncio

    js = nc.jetstream()
    await make_stream(js, names)
    hook = Seen()
    c = consumer(sqlite_store, nats_url, names, hooks=[hook])
    c.subscribe(names.of("a"), lambda e: None, name="sync", policy=QUICK)

    async def stuck(event: Event) -> None:
        await asyncio.Event().wait()

    once = RetryPolicy(max_attempts=1)
    c.subscribe(names.of("b"), stuck, name="stuck", policy=once, timeout=0.2)
    async with c:
        await publish(js, names.of("a"), {"n": 1})
        await publish(js, names.of("b"), {"n": 2})
        (record,) = await eventually(lambda: sqlite_store.find(Filter(), limit=5).items)
        await wait(lambda: settled(js, names))
    assert record.handler == "stuck" and record.error_type == "TimeoutError"
    assert hook.succeeded == ["sync"] and hook.dead == ["stuck"]


async def test_without_provisioning_an_unlimited_max_deliver_is_refused(
    nc: Any, nats_url: str, names: Names, sqlite_store: SQLiteStore
) -> None:
    """provision=False: what is missing is named, and a durable with the default max_deliver
    (-1, which can never catch a crash loop) is refused."""
    js = nc.jetstream()
    await make_stream(js, names)
    await js.add_consumer(names.stream, durable_name=names.durable, ack_policy="explicit")
    c = JetStreamConsumer(
        sqlite_store, servers=nats_url, stream=names.stream, durable=names.durable, provision=False
    )
    c.subscribe(names.of("a"), lambda e: None, policy=QUICK)
    with pytest.raises(ConfigError, match=r"DLQ stream .* does not exist"):
        await c.start()
    from redrive.transports.nats.provision import provision

    await provision(js, c.options, max_attempts=QUICK.max_attempts)
    await js.add_consumer(names.stream, durable_name=names.durable, max_deliver=-1)
    with pytest.raises(ConfigError, match="max_deliver -1"):
        await c.start()
