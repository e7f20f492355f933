"""Faults through the brokers: the workload published into a NATS JetStream stream and a
Kafka topic (Tansu), consumed by several ``JetStreamConsumer`` / ``KafkaConsumer`` processes
racing with 2 s leases for the store's retries, SIGKILLed at random and restarted. After
the drain every message is handled or recorded, no (stream, sequence, handler) or (topic,
partition, offset, handler) is recorded twice, nothing is left retrying, the broker has
nothing left to deliver, and the counts agree with the rows."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.js import api

from redrive import open_store
from redrive.models import Status
from redrive.stores.base import Store
from redrive.transports.nats.dlq import RECORD_ID
from tests.faults.runner import (
    Report,
    Run,
    chaos,
    check,
    check_origins,
    record_run,
    running,
    seed_for,
    unsettled,
)
from tests.kafka.conftest import Broker, broker  # noqa: F401 - the Tansu fixture, reused
from tests.kafka.support import committed, create_topic, depth
from tests.nats.conftest import NatsServer, running_server
from tests.nats.support import dlq_messages

pytestmark = pytest.mark.slow

PARTITIONS = 4


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A nats-server of this module's own (the NATS tests' recipe), on 127.0.0.1."""
    with running_server(str(tmp_path_factory.mktemp("nats"))) as server:
        yield server


async def _add_stream(url: str, stream: str, subject: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().add_stream(
            name=stream,
            subjects=[subject],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
        )
    finally:
        await nc.close()


async def _nats_pending(url: str, stream: str, durable: str) -> int:
    """Messages the durable still has to deliver or to see settled."""
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().consumer_info(stream, durable)
        return int(info.num_pending + info.num_ack_pending)
    finally:
        await nc.close()


async def _dlq_record_ids(url: str, stream: str) -> list[str]:
    """The record id each copy in the DLQ stream names."""
    nc = await nats.connect(url)
    try:
        copies = await dlq_messages(nc.jetstream(), f"{stream}_DLQ")
        return [str((copy.headers or {}).get(RECORD_ID)) for copy in copies]
    finally:
        await nc.close()


def check_dlq_copies(report: Report, store: Store, copied: list[str]) -> None:
    """Each DLQ copy names a dead record, and no record is copied twice (a copy sent again
    after a kill has the same ``Nats-Msg-Id``, which the DLQ stream deduplicates)."""
    for record_id, n in Counter(copied).items():
        record = store.get(record_id)
        if record is None or record.status != Status.DEAD:
            state = "no record" if record is None else record.status.value
            report.fail(f"DLQ copy of {record_id}: {state}, not dead")
        if n > 1:
            report.fail(f"record {record_id} copied to the DLQ {n} times")


@pytest.mark.nats
def test_nats_consumers_killed_at_random(nats_server: NatsServer, tmp_path: Path) -> None:
    """Two publishers into a stream and three consumers of one durable (2 s ack wait, 2 s
    leases for the store's retries), the consumers SIGKILLed at random: every acknowledged
    message is handled or recorded once per (stream, sequence, handler), the durable ends
    with nothing pending, each DLQ copy names a dead record once, and the counts agree."""
    seed = seed_for("nats")
    stream, subject, durable = f"FAULTS{seed}", f"faults{seed}.orders", f"faults{seed}"
    asyncio.run(_add_stream(nats_server.url, stream, subject))
    url = f"sqlite:///{tmp_path / 'redrive.db'}"
    store = open_store(url)
    env = {
        "REDRIVE_FAULT_BROKER": nats_server.url,
        "REDRIVE_FAULT_STREAM": stream,
        "REDRIVE_FAULT_TOPIC": subject,
        "REDRIVE_FAULT_GROUP": durable,
        "REDRIVE_FAULT_PACE": "0.1",
    }
    run = Run("nats", url, tmp_path / "logs", seed, env=env)
    with running(run):
        chaos(
            run,
            publisher="nats-publish",
            publishers=2,
            events=40,
            consumer="nats-consume",
            consumers=3,
            kills=5,
            store=store,
            consumers_only=True,
        )
        run.stop_all()

        def settled() -> bool:
            pending = asyncio.run(_nats_pending(nats_server.url, stream, durable))
            return pending == 0 and unsettled(store) == 0

        run.drain("nats-consume", settled)
    report = check(store, run.logs, at_least_once=True, stale=run.stale, lease=run.lease)
    check_origins(report, store, ("stream", "sequence"))
    copied = asyncio.run(_dlq_record_ids(nats_server.url, stream))
    print(f"[faults] nats: {len(copied)} DLQ copies, {report.by_status['dead']} dead records")
    check_dlq_copies(report, store, copied)
    record_run("nats: 2 publishers, 3 consumers", seed, run.faults, report)
    store.close()
    assert report.violations == []
    assert report.published > 0 and report.records > 0


@pytest.mark.kafka
def test_kafka_consumers_killed_at_random(broker: Broker, tmp_path: Path) -> None:  # noqa: F811
    """A publisher into a 4-partition topic and two consumers of one group (2 s leases for
    the store's retries), the consumers SIGKILLed at random so the group rebalances again
    and again:
    every acknowledged record is handled or recorded once per (topic, partition, offset,
    handler), the group commits every partition to its end, and the counts agree."""
    seed = seed_for("kafka")
    topic, group = f"faults{seed}.orders", f"faults{seed}"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    create_topic(broker.bootstrap, f"{topic}.dlq", PARTITIONS)
    url = f"sqlite:///{tmp_path / 'redrive.db'}"
    store = open_store(url)
    env = {
        "REDRIVE_FAULT_BROKER": broker.bootstrap,
        "REDRIVE_FAULT_TOPIC": topic,
        "REDRIVE_FAULT_GROUP": group,
        "REDRIVE_FAULT_PACE": "0.25",
    }
    run = Run("kafka", url, tmp_path / "logs", seed, env=env)
    with running(run):
        chaos(
            run,
            publisher="kafka-publish",
            publishers=1,
            events=40,
            consumer="kafka-consume",
            consumers=2,
            kills=4,
            store=store,
            every=(1.5, 3.0),  # a group join takes about 3 s: kill members that got work
            consumers_only=True,
        )
        run.stop_all()

        def settled() -> bool:
            ends = [depth(broker.bootstrap, topic, p) for p in range(PARTITIONS)]
            done = [max(0, committed(broker.bootstrap, group, topic, p)) for p in range(PARTITIONS)]
            return done == ends and unsettled(store) == 0

        run.drain("kafka-consume", settled, timeout=90)
    report = check(store, run.logs, at_least_once=True, stale=run.stale, lease=run.lease)
    check_origins(report, store, ("topic", "partition", "offset"))
    record_run("kafka: 1 publisher, 2 consumers", seed, run.faults, report)
    store.close()
    assert report.violations == []
    assert report.published > 0 and report.records > 0
