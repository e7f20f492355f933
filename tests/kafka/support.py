"""Plain confluent-kafka helpers for the tests: produce, create topics, read a topic
without joining a group (``assign``: no 3 s join), read committed offsets."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.kafka.conftest import CLIENT


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    """Create ``topic`` (Tansu would auto-create it with 4 partitions on produce)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, partitions, 1)])
    for future in futures.values():
        future.result(10)


def produce(
    bootstrap: str,
    topic: str,
    values: list[Any],
    *,
    key: str | bytes | None = None,
    headers: Sequence[tuple[str, bytes | None]] | None = None,
    partition: int | None = None,
    raw: bool = False,
) -> None:
    """Produce each value (JSON unless ``raw``) as its own request: Tansu's watermarks are
    wrong after a multi-record batch."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 0}
    )
    for value in values:
        data = value if raw else json.dumps(value).encode()
        kwargs: dict[str, Any] = {"key": key, "headers": list(headers or [])}
        if partition is not None:
            kwargs["partition"] = partition
        producer.produce(topic, data, **kwargs)
        assert producer.flush(10) == 0


def read(
    bootstrap: str,
    topic: str,
    count: int,
    *,
    partitions: int = 1,
    timeout: float = 20,
    isolation: str = "read_uncommitted",
) -> list[Message]:
    """The first ``count`` records of ``topic`` (fails if fewer arrive within ``timeout``)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "reader",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            **CLIENT,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"read {len(messages)} of {count} records from {topic}")
            for message in consumer.consume(count - len(messages), 0.2):
                if message.error() is None:
                    messages.append(message)
    finally:
        consumer.close()
    return messages


def committed(bootstrap: str, group: str, topic: str, partition: int = 0) -> int:
    """The offset ``group`` committed for ``topic[partition]`` (-1001: none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (tp,) = consumer.committed([TopicPartition(topic, partition)], timeout=10)
        offset: int = tp.offset
        return offset
    finally:
        consumer.close()


def depth(bootstrap: str, topic: str, partition: int = 0) -> int:
    """High minus low watermark of ``topic[partition]`` (exact for single-record batches)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "depth"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
        return int(high - low)
    finally:
        consumer.close()
