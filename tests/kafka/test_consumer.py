"""KafkaConsumer on a real broker: outcomes, records in the store, DLQ messages, commits."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from redrive import NonRetriableError, RetryPolicy
from redrive.models import Event, Status
from redrive.service import Filter
from redrive.stores.sqlite import SQLiteStore
from redrive.transports.kafka import DlqMessage, KafkaConsumer
from tests.helpers import eventually
from tests.kafka.conftest import CLIENT, Broker
from tests.kafka.support import committed, create_topic, produce, read

pytestmark = pytest.mark.kafka

FAST = RetryPolicy(max_attempts=3, initial_delay=0.05, jitter="none")


def consumer_for(broker: Broker, store: SQLiteStore, names: Any, **options: Any) -> KafkaConsumer:
    """A consumer of the test's group with the fast test client settings."""
    options.setdefault("policy", FAST)
    options.setdefault("commit_interval", 0.1)
    options.setdefault("client", CLIENT)
    return KafkaConsumer(store, bootstrap_servers=broker.bootstrap, group=names.group, **options)


async def test_transient_failure_retries_in_place_then_succeeds(
    broker: Broker, sqlite_store: SQLiteStore, names: Any
) -> None:
    """A handler that fails twice then succeeds leaves no record, and the offset is committed."""
    create_topic(broker.bootstrap, names.topic)
    calls: list[int] = []
    consumer = consumer_for(broker, sqlite_store, names)

    @consumer.handler(names.topic)
    async def flaky(event: Event) -> None:
        calls.append(event.payload["n"])
        if len(calls) < 3:
            raise ConnectionError("upstream down")

    produce(broker.bootstrap, names.topic, [{"n": 1}])
    async with consumer:
        await eventually(lambda: len(calls) == 3)
        await eventually(lambda: committed(broker.bootstrap, names.group, names.topic) == 1)
    assert sqlite_store.count(Filter()) == 0


async def test_poison_message_is_dead_in_store_and_dlq_topic(
    broker: Broker, sqlite_store: SQLiteStore, names: Any
) -> None:
    """A non-retriable failure is one dead record and one DlqMessage with the key and headers,
    and the messages behind it still run."""
    create_topic(broker.bootstrap, names.topic)
    create_topic(broker.bootstrap, f"{names.topic}.dlq")
    seen: list[int] = []
    consumer = consumer_for(broker, sqlite_store, names)

    @consumer.handler(names.topic, name="billing.charge")
    async def charge(event: Event) -> None:
        if event.payload["n"] == 1:
            raise NonRetriableError("card refused")
        seen.append(event.payload["n"])

    headers = [("tenant-id", b"acme"), ("correlation-id", b"c-7")]
    produce(broker.bootstrap, names.topic, [{"n": 1}, {"n": 2}], key="order-1", headers=headers)
    async with consumer:
        await eventually(lambda: seen == [2])
        await eventually(lambda: committed(broker.bootstrap, names.group, names.topic) == 2)
    (record,) = sqlite_store.find(Filter(), limit=10).items
    assert record.status == Status.DEAD
    assert record.handler == "billing.charge"
    assert record.event.tenant_id == "acme"
    assert record.origin["transport"] == "kafka"
    assert (record.origin["topic"], record.origin["partition"], record.origin["offset"]) == (
        names.topic,
        0,
        0,
    )
    assert record.origin["group"] == names.group
    assert record.origin["member"]
    (dead,) = read(broker.bootstrap, f"{names.topic}.dlq", 1)
    assert dead.key() == b"order-1"
    got = dict(dead.headers() or [])
    assert got["error-code"] == b"NON_RETRIABLE"
    assert got["original-topic"] == names.topic.encode()
    assert got["original-partition"] == b"0"
    assert got["original-offset"] == b"0"
    assert got["retry-count"] == b"0"
    assert got["redrive-record-id"] == record.id.encode()
    assert got["tenant-id"] == b"acme"
    message = DlqMessage.from_json(dead.value() or b"")
    assert message.event == {"n": 1}
    assert message.original_key == "order-1"
    assert message.consumer_group == names.group
    assert message.metadata == {"tenantId": "acme", "correlationId": "c-7"}
    assert "card refused" in message.error
    assert message.stack and "NonRetriableError" in message.stack


async def test_exhausted_retries_are_dead_with_their_attempts(
    broker: Broker, sqlite_store: SQLiteStore, names: Any
) -> None:
    """A handler that always fails is dead after max_attempts, with retry-count attempts-1."""
    create_topic(broker.bootstrap, names.topic)
    create_topic(broker.bootstrap, f"{names.topic}.dlq")
    consumer = consumer_for(broker, sqlite_store, names)

    @consumer.handler(names.topic)
    async def always(event: Event) -> None:
        raise ConnectionError("still down")

    produce(broker.bootstrap, names.topic, [{"n": 1}], key="k")
    async with consumer:
        await eventually(lambda: committed(broker.bootstrap, names.group, names.topic) == 1)
    (record,) = sqlite_store.find(Filter(), limit=10).items
    assert record.status == Status.DEAD
    assert record.attempts == 3
    (dead,) = read(broker.bootstrap, f"{names.topic}.dlq", 1)
    got = dict(dead.headers() or [])
    assert got["error-code"] == b"RETRIES_EXHAUSTED"
    assert got["retry-count"] == b"2"


async def test_value_that_is_not_json_is_dead_with_a_preview(
    broker: Broker, sqlite_store: SQLiteStore, names: Any
) -> None:
    """A value that is not JSON is a non-retriable failure with a preview of its bytes, and
    the consumer goes on with the next message."""
    create_topic(broker.bootstrap, names.topic)
    seen: list[Any] = []
    consumer = consumer_for(broker, sqlite_store, names, dlq=False)

    @consumer.handler(names.topic)
    async def handle(event: Event) -> None:
        seen.append(event.payload)

    produce(
        broker.bootstrap, names.topic, [b"\xffnot json", json.dumps({"ok": 1}).encode()], raw=True
    )
    async with consumer:
        await eventually(lambda: seen == [{"ok": 1}])
    (record,) = sqlite_store.find(Filter(), limit=10).items
    assert record.status == Status.DEAD
    assert record.error_type.endswith("UndecodableValue")
    assert "\\xffnot json" in record.error_message
    assert record.origin["value_base64"]


async def test_long_backoff_goes_to_the_store_and_the_partition_flows(
    broker: Broker, sqlite_store: SQLiteStore, names: Any
) -> None:
    """A retry due later than ``in_place`` is a scheduled record: the messages behind it run
    and are committed before the store scheduler runs the retry, which then resolves it."""
    create_topic(broker.bootstrap, names.topic)
    policy = RetryPolicy(max_attempts=3, initial_delay=2.0, jitter="none")
    consumer = consumer_for(broker, sqlite_store, names, policy=policy, in_place=0.5)
    seen: list[int] = []

    @consumer.handler(names.topic)
    async def handle(event: Event) -> None:
        seen.append(event.payload["n"])
        if seen.count(1) == 1 and event.payload["n"] == 1:
            raise ConnectionError("later, please")

    produce(broker.bootstrap, names.topic, [{"n": 1}, {"n": 2}, {"n": 3}])
    async with consumer:
        await eventually(lambda: committed(broker.bootstrap, names.group, names.topic) == 3)
        assert seen[:3] == [1, 2, 3]  # message 1's retry is still waiting in the store
        (record,) = sqlite_store.find(Filter(statuses=(Status.SCHEDULED,)), limit=10).items
        assert record.origin["offset"] == 0
        await eventually(lambda: seen == [1, 2, 3, 1])
        await eventually(
            lambda: (
                (now := sqlite_store.get(record.id)) is not None and now.status == Status.RESOLVED
            )
        )


async def test_retry_that_runs_out_in_the_scheduler_reaches_the_dlq_topic(
    broker: Broker, sqlite_store: SQLiteStore, names: Any
) -> None:
    """A record that dies in the store scheduler (not in the consumer) gets its DlqMessage too."""
    create_topic(broker.bootstrap, names.topic)
    create_topic(broker.bootstrap, f"{names.topic}.dlq")
    policy = RetryPolicy(max_attempts=2, initial_delay=1.0, jitter="none")
    consumer = consumer_for(broker, sqlite_store, names, policy=policy, in_place=0.2)

    @consumer.handler(names.topic)
    async def handle(event: Event) -> None:
        raise ConnectionError("never")

    produce(broker.bootstrap, names.topic, [{"n": 1}], key="k1")
    async with consumer:
        (dead,) = await asyncio.to_thread(read, broker.bootstrap, f"{names.topic}.dlq", 1)
    (record,) = sqlite_store.find(Filter(), limit=10).items
    assert record.status == Status.DEAD
    assert record.attempts == 2
    assert dict(dead.headers() or [])["redrive-record-id"] == record.id.encode()
    assert dead.key() == b"k1"


async def test_transaction_writes_the_dlq_message_and_commits_its_offset_together(
    broker: Broker, sqlite_store: SQLiteStore, names: Any
) -> None:
    """With a transactional id, the DlqMessage and the commit past its offset are one
    transaction: the offset is committed though the consumer's own commits wait an hour,
    and a read_committed reader sees the DlqMessage (Tansu supports transactions)."""
    create_topic(broker.bootstrap, names.topic)
    create_topic(broker.bootstrap, f"{names.topic}.dlq")
    consumer = consumer_for(
        broker,
        sqlite_store,
        names,
        transactional_id=names.of("txn"),
        commit_every=10**9,
        commit_interval=3600,
    )

    @consumer.handler(names.topic)
    async def refuse(event: Event) -> None:
        raise NonRetriableError("no")

    produce(broker.bootstrap, names.topic, [{"n": 1}], key="t-1")
    async with consumer:
        await eventually(lambda: committed(broker.bootstrap, names.group, names.topic) == 1)
        (dead,) = await asyncio.to_thread(
            read, broker.bootstrap, f"{names.topic}.dlq", 1, isolation="read_committed"
        )
    assert dead.key() == b"t-1"
    assert dict(dead.headers() or [])["error-code"] == b"NON_RETRIABLE"


async def test_a_missing_dlq_topic_is_named_at_start(
    broker: Broker, sqlite_store: SQLiteStore, names: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Starting with the DLQ on and no {topic}.dlq logs which topic to provision."""
    create_topic(broker.bootstrap, names.topic)
    consumer = consumer_for(broker, sqlite_store, names)
    consumer.subscribe(names.topic, lambda event: None, name="noop")
    with caplog.at_level("WARNING", logger="redrive.kafka"):
        async with consumer:
            pass
    assert f"DLQ topics missing: {names.topic}.dlq" in caplog.text
    assert "redrive kafka provision" in caplog.text
