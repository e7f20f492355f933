"""The workload through a broker: the same events and handlers as :mod:`tests.faults.workload`,
published into a JetStream stream or a Kafka topic and consumed by the transports.

Roles (run as ``python -m tests.faults.workload ROLE STORE_URL LOG_DIR SEED [FIRST COUNT]``,
with the broker named by ``REDRIVE_FAULT_BROKER`` (a NATS URL or Kafka bootstrap servers),
``REDRIVE_FAULT_TOPIC`` (the subject or topic), ``REDRIVE_FAULT_STREAM`` (NATS) and
``REDRIVE_FAULT_GROUP`` (the NATS durable, the Kafka group)):

- ``nats-publish`` / ``kafka-publish``: publish events ``FIRST .. FIRST+COUNT-1``, one
  every ``REDRIVE_FAULT_PACE`` seconds (default 0.05), and log
  each one the broker acknowledged, with the event id the consumer will give it
  (``<stream>:<sequence>``, ``kafka:<topic>:<partition>:<offset>``), then exit;
- ``nats-consume`` / ``kafka-consume``: a ``JetStreamConsumer`` or ``KafkaConsumer`` with the
  workload's handlers ``a`` and ``b`` (and its store scheduler, with the run's lease) until
  SIGTERM or SIGKILL.

The logs are those of the bus workload (``published-``, ``runs-``, ``hooks-``, ``err-``).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from redrive import open_store
from tests.faults.workload import (
    LEASE,
    line_log,
    log_hook,
    payload,
    subscribe_handlers,
    until_term,
)

BROKER = os.environ.get("REDRIVE_FAULT_BROKER", "")
TOPIC = os.environ.get("REDRIVE_FAULT_TOPIC", "orders")
STREAM = os.environ.get("REDRIVE_FAULT_STREAM", "FAULTS")
GROUP = os.environ.get("REDRIVE_FAULT_GROUP", "faults")
PACE = float(os.environ.get("REDRIVE_FAULT_PACE", "0.05"))
"""Seconds between two publishes: the publishers run while the consumers are killed."""
NATS_TIMINGS: dict[str, Any] = {"ack_wait": 2.0, "store_retry_delay": 0.3, "batch": 10}
"""A delivery expires 2 s after a consumer died with it; a store error naks for 0.3 s."""


def _published(logs: Path) -> Any:
    return line_log(logs / f"published-{os.getpid()}.log")


async def nats_publish(logs: Path, seed: int, first: int, count: int) -> None:
    import nats

    nc = await nats.connect(BROKER)
    js = nc.jetstream()
    out = _published(logs)
    for n in range(first, first + count):
        body = payload(seed, n)
        ack = await js.publish(TOPIC, json.dumps(body).encode(), stream=STREAM)
        out.write(f"P {STREAM}:{ack.seq} {n} {body['a']} {body['b']}\n")
        await asyncio.sleep(PACE)  # the workload's rate, not a synchronisation
    await nc.close()


async def nats_consume(url: str, logs: Path) -> None:
    from redrive.transports.nats import JetStreamConsumer

    consumer = JetStreamConsumer(
        open_store(url),
        servers=BROKER,
        stream=STREAM,
        durable=GROUP,
        hooks=[log_hook(logs)],
        service="faults",
        poll_interval=0.1,
        lease=LEASE,
        concurrency=8,
        **NATS_TIMINGS,
    )
    subscribe_handlers(consumer.bus, logs, TOPIC)
    async with consumer:
        print("ready", flush=True)
        await until_term()


def kafka_publish(logs: Path, seed: int, first: int, count: int) -> None:
    from confluent_kafka import KafkaError, Message, Producer

    # One record per request: Tansu's watermarks are wrong after a multi-record batch.
    producer = Producer(
        {"bootstrap.servers": BROKER, "partitioner": "murmur2_random", "linger.ms": 0}
    )
    out = _published(logs)
    acked: list[tuple[KafkaError | None, Message]] = []

    def delivered(error: KafkaError | None, msg: Message) -> None:
        acked.append((error, msg))

    for n in range(first, first + count):
        body = payload(seed, n)
        producer.produce(
            TOPIC, json.dumps(body).encode(), key=str(n).encode(), on_delivery=delivered
        )
        producer.flush(30)
        (error, msg) = acked.pop()
        if error is not None:
            raise SystemExit(f"produce of event {n} failed: {error}")
        event_id = f"kafka:{TOPIC}:{msg.partition()}:{msg.offset()}"
        out.write(f"P {event_id} {n} {body['a']} {body['b']}\n")
        time.sleep(PACE)  # the workload's rate, not a synchronisation


async def kafka_consume(url: str, logs: Path) -> None:
    from redrive.transports.kafka import KafkaConsumer
    from tests.kafka.conftest import CLIENT

    consumer = KafkaConsumer(
        open_store(url),
        bootstrap_servers=BROKER,
        group=GROUP,
        topics=[TOPIC],
        hooks=[log_hook(logs)],
        client=CLIENT,
        in_place=0.03,  # retries due within 30 ms run in place, the later ones in the store
        commit_interval=0.2,
        service="faults",
        poll_interval=0.1,
        lease=LEASE,
        concurrency=8,
    )
    subscribe_handlers(consumer.bus, logs, TOPIC)
    async with consumer:
        print("ready", flush=True)
        await until_term()


def main(role: str, url: str, logs: Path, seed: int, rest: list[str]) -> None:
    """Run ``role`` (see the module's docstring)."""
    if role == "nats-publish":
        asyncio.run(nats_publish(logs, seed, int(rest[0]), int(rest[1])))
    elif role == "nats-consume":
        asyncio.run(nats_consume(url, logs))
    elif role == "kafka-publish":
        kafka_publish(logs, seed, int(rest[0]), int(rest[1]))
    elif role == "kafka-consume":
        asyncio.run(kafka_consume(url, logs))
    else:
        raise SystemExit(f"unknown role {role!r}")
