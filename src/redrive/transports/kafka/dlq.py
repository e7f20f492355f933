"""The DlqMessage redrive writes to ``{topic}.dlq``, so Kafka-native tooling sees dead letters.

The value is JSON with the fields of the platform's DLQ schema (camelCase, as TypeScript
and Java consumers expect): the original topic, partition, offset (a string: offsets
outgrow JavaScript numbers), key and timestamp, the event, the error, its stack and code,
the consumer group and member, when it was processed, the retry count and metadata
(tenant, correlation, user), plus redrive's own ids. The record keeps the original key, so
it lands in the DLQ partition its key maps to, and carries the headers ``error-code``,
``original-topic``, ``original-partition``, ``original-offset``, ``retry-count`` and
``redrive-record-id``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from redrive.models import JSON, DeadLetter, format_time, parse_time, utcnow
from redrive.transports.kafka.envelope import RawHeaders, raw_headers_of

RECORD_ID_HEADER = "redrive-record-id"
_CODES = {
    "non_retriable": "NON_RETRIABLE",
    "exhausted": "RETRIES_EXHAUSTED",
}
REDRIVE_HEADERS = (
    "error-code",
    "original-topic",
    "original-partition",
    "original-offset",
    "retry-count",
    RECORD_ID_HEADER,
)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class DlqMessage:
    """One dead letter as it is written to a Kafka DLQ topic.

    .. versionadded:: 0.1
    """

    original_topic: str
    original_partition: int
    original_offset: int
    original_key: str | None
    original_timestamp: datetime
    event: JSON
    error: str
    stack: str | None
    error_code: str
    consumer_group: str
    consumer_id: str | None
    processing_timestamp: datetime
    retry_count: int
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    record_id: str | None = None
    event_id: str | None = None
    handler: str | None = None
    error_type: str | None = None
    fingerprint: str | None = None

    def to_json(self) -> bytes:
        """The message's value."""
        data: dict[str, JSON] = {
            "originalTopic": self.original_topic,
            "originalPartition": self.original_partition,
            "originalOffset": str(self.original_offset),
            "originalKey": self.original_key,
            "originalTimestamp": format_time(self.original_timestamp),
            "event": self.event,
            "error": self.error,
            "stack": self.stack,
            "errorCode": self.error_code,
            "consumerGroup": self.consumer_group,
            "consumerId": self.consumer_id,
            "processingTimestamp": format_time(self.processing_timestamp),
            "retryCount": self.retry_count,
            "metadata": dict(self.metadata),
            "redrive": {
                "recordId": self.record_id,
                "eventId": self.event_id,
                "handler": self.handler,
                "errorType": self.error_type,
                "fingerprint": self.fingerprint,
            },
        }
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, value: bytes) -> DlqMessage:
        """Parse a value written by :meth:`to_json`; raises ``ValueError`` otherwise."""
        data = json.loads(value)
        if not isinstance(data, dict) or "originalTopic" not in data:
            raise ValueError("not a redrive DlqMessage")
        ours = data.get("redrive") or {}
        try:
            return cls(
                original_topic=str(data["originalTopic"]),
                original_partition=int(data["originalPartition"]),
                original_offset=int(data["originalOffset"]),
                original_key=data.get("originalKey"),
                original_timestamp=parse_time(data.get("originalTimestamp")) or utcnow(),
                event=data.get("event"),
                error=str(data.get("error") or ""),
                stack=data.get("stack"),
                error_code=str(data.get("errorCode") or "PROCESSING_FAILED"),
                consumer_group=str(data.get("consumerGroup") or ""),
                consumer_id=data.get("consumerId"),
                processing_timestamp=parse_time(data.get("processingTimestamp")) or utcnow(),
                retry_count=int(data.get("retryCount") or 0),
                metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
                record_id=ours.get("recordId"),
                event_id=ours.get("eventId"),
                handler=ours.get("handler"),
                error_type=ours.get("errorType"),
                fingerprint=ours.get("fingerprint"),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a redrive DlqMessage: {exc}") from None

    def headers(self) -> list[tuple[str, bytes]]:
        """The redrive headers of the DLQ record."""
        pairs = [
            ("error-code", self.error_code),
            ("original-topic", self.original_topic),
            ("original-partition", str(self.original_partition)),
            ("original-offset", str(self.original_offset)),
            ("retry-count", str(self.retry_count)),
        ]
        if self.record_id:
            pairs.append((RECORD_ID_HEADER, self.record_id))
        return [(name, value.encode()) for name, value in pairs]


def error_code(record: DeadLetter) -> str:
    """``error-code``: why the record died (``NON_RETRIABLE``, ``RETRIES_EXHAUSTED``,
    ``INVALID_JSON``; ``PROCESSING_FAILED`` when the history does not say)."""
    if record.error_type.endswith("UndecodableValue"):
        return "INVALID_JSON"
    decision = record.history[-1].detail.get("decision") if record.history else None
    return _CODES.get(str(decision), "PROCESSING_FAILED")


def message_for(record: DeadLetter, *, group: str, member: str | None) -> DlqMessage:
    """The DlqMessage of a dead ``record`` consumed from Kafka (its origin says where)."""
    origin = record.origin
    millis = origin.get("timestamp")
    original_ts = (
        datetime.fromtimestamp(millis / 1000, UTC)
        if isinstance(millis, int | float)
        else record.event.occurred_at
    )
    event = record.payload
    if event is None and isinstance(origin.get("value_base64"), str):
        event = base64.b64decode(origin["value_base64"]).decode("utf-8", "backslashreplace")
    metadata = {
        name: value
        for name, value in (
            ("tenantId", record.event.tenant_id),
            ("correlationId", record.event.correlation_id),
            ("userId", record.event.headers.get("user-id")),
        )
        if value
    }
    return DlqMessage(
        original_topic=str(origin.get("topic", record.topic)),
        original_partition=int(origin.get("partition", -1)),
        original_offset=int(origin.get("offset", -1)),
        original_key=record.event.key,
        original_timestamp=original_ts,
        event=event,
        error=f"{record.error_type}: {record.error_message}",
        stack=record.traceback or None,
        error_code=error_code(record),
        consumer_group=str(origin.get("group") or group),
        consumer_id=member or _str_or_none(origin.get("member")),
        processing_timestamp=record.updated_at,
        retry_count=max(record.attempts - 1, 0),
        metadata=metadata,
        record_id=record.id,
        event_id=record.event.id,
        handler=record.handler,
        error_type=record.error_type,
        fingerprint=record.fingerprint,
    )


def dlq_record(record: DeadLetter, message: DlqMessage) -> tuple[bytes | None, RawHeaders]:
    """The key and headers of the DLQ record: the original key, the original headers (so
    tracing and tenancy survive) with the redrive headers replacing any of the same name."""
    key = original_key(record)
    original = raw_headers_of(record.origin)
    if original is None:
        original = [(k, v.encode()) for k, v in record.event.headers.items()]
    headers: RawHeaders = [(k, v) for k, v in original if k not in REDRIVE_HEADERS]
    headers.extend(message.headers())
    return key, headers


def original_key(record: DeadLetter) -> bytes | None:
    """The original key bytes (from ``key_base64`` when they were not UTF-8)."""
    b64 = record.origin.get("key_base64")
    if isinstance(b64, str):
        return base64.b64decode(b64)
    key = record.origin.get("key", record.event.key)
    return None if key is None else str(key).encode()


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
