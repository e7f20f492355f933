"""``redrive retry --republish`` for Kafka: dead letters back to their original topics.

Each record's original key, value and headers are produced again to the topic it was
consumed from, with ``redrive-replay-of`` (the record id) and ``retry-count`` (its
attempts so far) headers. The key goes through the Java-compatible partitioner, so it
lands in the partition its key maps to, behind the key's other messages. The value is the
record's payload as JSON (an operator's patch included), or the original bytes when they
were not JSON. Every delivery is acknowledged before this returns.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from redrive.exceptions import ConfigError
from redrive.transports.kafka.client import AsyncProducer, base_config
from redrive.transports.kafka.dlq import original_key
from redrive.transports.kafka.envelope import RawHeaders, raw_headers_of
from redrive.transports.kafka.settings import KafkaSettings

if TYPE_CHECKING:
    from redrive.config import Settings
    from redrive.models import DeadLetter

REPLAY_OF_HEADER = "redrive-replay-of"
RETRY_COUNT_HEADER = "retry-count"
ACTOR_HEADER = "redrive-replayed-by"
_OURS = (REPLAY_OF_HEADER, RETRY_COUNT_HEADER, ACTOR_HEADER)


async def republish(records: Sequence[DeadLetter], settings: Settings, *, actor: str) -> int:
    """Produce each record's original message to its original topic; return how many were
    acknowledged. The brokers are ``[kafka] bootstrap_servers`` of the config."""
    kafka = KafkaSettings.of(settings)
    if not kafka.bootstrap_servers:
        raise ConfigError(
            "republishing to Kafka needs the brokers: set bootstrap_servers in [kafka]",
            source=settings.source,
            key="kafka.bootstrap_servers",
        )
    producer = AsyncProducer(base_config(kafka.bootstrap_servers, kafka.client))
    sent = 0
    try:
        for record in records:
            await producer.send(
                str(record.origin.get("topic") or record.topic),
                value_of(record),
                key=original_key(record),
                headers=replay_headers(record, actor),
            )
            sent += 1
    finally:
        await producer.close()
    return sent


def value_of(record: DeadLetter) -> bytes | None:
    """The value to send: the original bytes if they were not JSON, else the payload."""
    raw = record.origin.get("value_base64")
    if isinstance(raw, str) and record.payload is None:
        return base64.b64decode(raw)
    if record.payload is None and record.origin.get("tombstone"):
        return None
    return json.dumps(record.payload, ensure_ascii=False, separators=(",", ":")).encode()


def replay_headers(record: DeadLetter, actor: str) -> RawHeaders:
    """The original headers, without an earlier replay's, plus this replay's."""
    original = raw_headers_of(record.origin)
    if original is None:
        original = [(k, v.encode()) for k, v in record.event.headers.items()]
    headers: RawHeaders = [(k, v) for k, v in original if k not in _OURS]
    headers.append((REPLAY_OF_HEADER, record.id.encode()))
    headers.append((RETRY_COUNT_HEADER, str(record.attempts).encode()))
    headers.append((ACTOR_HEADER, actor.encode()))
    return headers
