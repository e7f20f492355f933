"""``redrive kafka import TOPIC``: dead letters already on a Kafka DLQ topic, into the store.

Three styles of dead letter are decoded, so records produced by other systems get the
CLI, API, console, grouping and replay:

- redrive's own ``DlqMessage`` (its JSON value and ``redrive-record-id`` header; the
  record keeps its id, so dead letters already in the store are not imported twice);
- Kafka Connect's ``__connect.errors.*`` context headers (UTF-8 strings; the value is the
  original value);
- Spring Kafka's ``kafka_dlt-*`` headers: the partition a 4-byte and the offset and
  timestamp 8-byte big-endian integers. A key repeats when a record went through several
  DLTs: the first value is the origin.

Anything else is imported with the DLQ topic as its only context. Imports are idempotent
(a record's id is derived from the DLQ record's topic, partition and offset, or is
redrive's own) and resumable: the position per partition is kept in the store
(``meta`` namespace ``kafka-import``), so a second run reads only what is new.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from redrive._ids import derived_id
from redrive.models import JSON, DeadLetter, Event
from redrive.stores.base import Store
from redrive.transports._imported import imported_dead_letter
from redrive.transports.kafka.client import Consumer, Message, TopicPartition, consumer_config
from redrive.transports.kafka.dlq import RECORD_ID_HEADER, REDRIVE_HEADERS, DlqMessage
from redrive.transports.kafka.envelope import decode_key, decode_value, event_id, timestamp_of

META = "kafka-import"
_SUFFIX = re.compile(r"(\.dlq|\.DLT|-dlt|\.dlt|-dlq|\.deadletter)$")
_CONNECT = "__connect.errors."
_SPRING = "kafka_dlt-"


@dataclasses.dataclass(frozen=True, slots=True)
class ImportResult:
    """What one import run read and added."""

    read: int
    imported: int
    by_format: Mapping[str, int]


def import_topic(
    config: Mapping[str, Any],
    topic: str,
    store: Store,
    *,
    batch: int = 500,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Read ``topic`` from the stored position to its end into ``store``.

    :param config: librdkafka settings (``bootstrap.servers`` at least).
    """
    consumer = Consumer(consumer_config({**config, "group.id": f"redrive-import-{topic}"}))
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        info = metadata.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            from redrive.exceptions import NotFound

            raise NotFound(f"no Kafka topic {topic!r}")
        stored = store.meta_get(META, topic)
        positions: dict[str, int] = dict(stored[0]) if stored else {}
        ends = {}
        for partition in info.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            start = max(positions.get(str(partition), 0), low)
            if start < high:
                ends[partition] = high
                positions[str(partition)] = start
        if not ends:
            return ImportResult(0, 0, {})
        consumer.assign([TopicPartition(topic, p, positions[str(p)]) for p in ends])
        return _read(consumer, topic, store, ends, positions, batch, progress)
    finally:
        consumer.close()


def _read(
    consumer: Any,
    topic: str,
    store: Store,
    ends: dict[int, int],
    positions: dict[str, int],
    batch: int,
    progress: Callable[[int], None] | None,
) -> ImportResult:
    read = imported = 0
    formats: dict[str, int] = {}
    idle = 0
    while any(positions[str(p)] < end for p, end in ends.items()) and idle < 50:
        messages = [m for m in consumer.consume(batch, 0.2) if m.error() is None]
        idle = 0 if messages else idle + 1
        records = []
        for message in messages:
            partition, offset = message.partition(), message.offset()
            if offset >= ends.get(partition, 0):
                continue
            record, kind = decode(message)
            records.append(record)
            formats[kind] = formats.get(kind, 0) + 1
            positions[str(partition)] = offset + 1
        if records:
            imported += store.import_records(records)
            read += len(records)
            store.meta_put(META, topic, dict(positions))
            if progress is not None:
                progress(len(records))
    return ImportResult(read, imported, formats)


def decode(message: Message) -> tuple[DeadLetter, str]:
    """The dead letter of one DLQ record, and its style (redrive, connect, spring, other)."""
    headers = _first_values(message.headers())
    value = message.value()
    if RECORD_ID_HEADER in headers or _looks_like_redrive(value):
        try:
            return _from_redrive(message, headers), "redrive"
        except ValueError:
            pass
    if any(name.startswith(_CONNECT) for name in headers):
        return _from_context(message, headers, _connect_context(headers)), "connect"
    if any(name.startswith(_SPRING) for name in headers):
        return _from_context(message, headers, _spring_context(headers)), "spring"
    return _from_context(message, headers, {}), "other"


def _first_values(raw: Any) -> dict[str, bytes]:
    """Header values by name; the first of a repeated name wins (Spring: the origin)."""
    values: dict[str, bytes] = {}
    for name, value in raw or ():
        if value is not None and name not in values:
            values[name] = value.encode() if isinstance(value, str) else value
    return values


def _looks_like_redrive(value: bytes | None) -> bool:
    return value is not None and value.startswith(b"{") and b'"originalTopic"' in value


def _text(headers: Mapping[str, bytes], name: str) -> str | None:
    value = headers.get(name)
    return None if value is None else value.decode("utf-8", "backslashreplace")


def _number(headers: Mapping[str, bytes], name: str) -> int | None:
    """A Spring header number: big-endian binary (4 or 8 bytes), or decimal text."""
    value = headers.get(name)
    if value is None:
        return None
    if len(value) in (4, 8) and not value.isdigit():
        return int.from_bytes(value, "big", signed=True)
    try:
        return int(value.decode())
    except (UnicodeDecodeError, ValueError):
        return None


def _connect_context(headers: Mapping[str, bytes]) -> dict[str, Any]:
    def get(name: str) -> str | None:
        return _text(headers, _CONNECT + name)

    partition, offset = get("partition"), get("offset")
    connector = get("connector.name")
    return {
        "topic": get("topic"),
        "partition": int(partition) if partition and partition.lstrip("-").isdigit() else None,
        "offset": int(offset) if offset and offset.lstrip("-").isdigit() else None,
        "handler": f"connect:{connector}" if connector else "connect",
        "error_type": get("exception.class.name") or "ConnectError",
        "error_message": get("exception.message") or "",
        "traceback": get("exception.stacktrace") or "",
        "group": f"connect-{connector}" if connector else None,
        "member": get("task.id"),
        "stage": get("stage"),
    }


def _spring_context(headers: Mapping[str, bytes]) -> dict[str, Any]:
    def get(name: str) -> str | None:
        return _text(headers, _SPRING + name)

    group = get("original-consumer-group")
    millis = _number(headers, _SPRING + "original-timestamp")
    return {
        "topic": get("original-topic"),
        "partition": _number(headers, _SPRING + "original-partition"),
        "offset": _number(headers, _SPRING + "original-offset"),
        "timestamp": millis,
        "handler": f"spring:{group}" if group else "spring",
        "error_type": get("exception-fqcn") or get("key-exception-fqcn") or "SpringError",
        "error_message": get("exception-message") or get("key-exception-message") or "",
        "traceback": get("exception-stacktrace") or get("key-exception-stacktrace") or "",
        "group": group,
    }


def _from_redrive(message: Message, headers: Mapping[str, bytes]) -> DeadLetter:
    dlq = DlqMessage.from_json(message.value() or b"")
    at = timestamp_of(message)
    record_id = dlq.record_id or _text(headers, RECORD_ID_HEADER) or _derived_id(message, at)
    handler = dlq.handler or "unknown"
    error_type = dlq.error_type or dlq.error.split(":", 1)[0]
    message_text = dlq.error.split(": ", 1)[1] if ": " in dlq.error else dlq.error
    origin: dict[str, JSON] = {
        "transport": "kafka",
        "topic": dlq.original_topic,
        "partition": dlq.original_partition,
        "offset": dlq.original_offset,
        "timestamp": int(dlq.original_timestamp.timestamp() * 1000),
        "group": dlq.consumer_group,
        "member": dlq.consumer_id,
        "key": dlq.original_key,
        "imported_from": _where(message, "redrive"),
    }
    event = Event(
        id=dlq.event_id
        or event_id(dlq.original_topic, dlq.original_partition, dlq.original_offset, {}),
        topic=dlq.original_topic,
        payload=dlq.event,
        key=dlq.original_key,
        headers=_plain_headers(headers),
        correlation_id=dlq.metadata.get("correlationId"),
        tenant_id=dlq.metadata.get("tenantId"),
        source=f"kafka:{dlq.original_topic}",
        occurred_at=dlq.original_timestamp,
    )
    return _dead_letter(
        record_id,
        event,
        handler,
        error_type,
        message_text,
        dlq.stack or "",
        at,
        origin,
        attempts=dlq.retry_count + 1,
        fingerprint=dlq.fingerprint,
    )


def _from_context(
    message: Message, headers: Mapping[str, bytes], context: Mapping[str, Any]
) -> DeadLetter:
    at = timestamp_of(message)
    dlq_topic = message.topic() or ""
    topic = context.get("topic") or _SUFFIX.sub("", dlq_topic) or dlq_topic
    partition, offset = context.get("partition"), context.get("offset")
    key, key_b64 = decode_key(message.key())
    value = message.value()
    payload, error = decode_value(value)
    kind = "connect" if "stage" in context else "spring" if context else "other"
    millis = context.get("timestamp")
    origin: dict[str, JSON] = {
        "transport": "kafka",
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "timestamp": millis if millis is not None else int(at.timestamp() * 1000),
        "group": context.get("group"),
        "member": context.get("member"),
        "key": key,
        "imported_from": _where(message, kind),
    }
    if key_b64 is not None:
        origin["key_base64"] = key_b64
    if error is not None and value is not None:
        origin["value_base64"] = base64.b64encode(value).decode()
    if partition is not None and offset is not None:
        eid = event_id(topic, partition, offset, {})
    else:
        eid = f"kafka:{dlq_topic}:{message.partition()}:{message.offset()}"
    occurred = datetime.fromtimestamp(millis / 1000, UTC) if millis is not None else at
    event = Event(
        id=eid,
        topic=topic,
        payload=payload,
        key=key,
        headers=_plain_headers(headers),
        source=f"kafka:{topic}",
        occurred_at=occurred,
    )
    error_type = context.get("error_type") or "UnknownError"
    text = context.get("error_message") or (
        f"no error context on {dlq_topic} (not a redrive, Kafka Connect or Spring dead letter)"
    )
    return _dead_letter(
        _derived_id(message, at),
        event,
        context.get("handler") or "unknown",
        error_type,
        text,
        context.get("traceback") or "",
        at,
        origin,
    )


def _dead_letter(
    record_id: str,
    event: Event,
    handler: str,
    error_type: str,
    message: str,
    traceback: str,
    at: datetime,
    origin: Mapping[str, JSON],
    *,
    attempts: int = 1,
    fingerprint: str | None = None,
) -> DeadLetter:
    return imported_dead_letter(
        record_id,
        event,
        handler,
        error_type,
        message,
        traceback,
        at,
        origin,
        attempts=attempts,
        fingerprint_=fingerprint,
    )


def _derived_id(message: Message, at: datetime) -> str:
    """An id fixed by (DLQ topic, partition, offset): the same on every run, ordered by the
    DLQ record's time."""
    return derived_id(at, f"{message.topic()}\x1f{message.partition()}\x1f{message.offset()}")


def _where(message: Message, kind: str) -> dict[str, JSON]:
    return {
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "format": kind,
    }


def _plain_headers(headers: Mapping[str, bytes]) -> dict[str, str]:
    """The headers that are not dead-letter context, as text."""
    plain = {}
    for name, value in headers.items():
        if name.startswith((_CONNECT, _SPRING)) or name in REDRIVE_HEADERS:
            continue
        try:
            plain[name] = value.decode()
        except UnicodeDecodeError:
            continue
    return plain
