"""From a Kafka record to redrive's ``Event`` and the ``origin`` every record keeps.

The value is JSON (the payload). A value that is not JSON does not crash the consumer: it
is a non-retriable failure (``UndecodableValue``) whose message previews the raw bytes,
and the bytes are kept in the origin (``value_base64``) so a republish sends them as they
were. The event id comes from the ``redrive-event-id`` header when a producer set one,
else from (topic, partition, offset): stable across redeliveries, so the store's
(event id, handler) idempotency records one dead letter per message and handler however
often the message is redelivered.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from redrive._json import parse
from redrive.exceptions import NonRetriableError
from redrive.models import JSON, Event, build_event, utcnow

EVENT_ID_HEADER = "redrive-event-id"
_CORRELATION = ("correlation-id", "correlation_id", "x-correlation-id", "correlationId")
_TENANT = ("tenant-id", "tenant_id", "x-tenant-id", "tenantId")
_PREVIEW = 64

RawHeaders = list[tuple[str, bytes | None]]


class UndecodableValue(NonRetriableError):
    """The record's value is not JSON."""


class Envelope:
    """One consumed record: the event handlers get, and a decode error. The origin (what
    a failure record keeps) is built only when a failure needs it."""

    __slots__ = ("error", "event", "message")

    def __init__(self, message: Any, event: Event, error: UndecodableValue | None) -> None:
        self.message = message
        self.event = event
        self.error = error

    def origin(self, *, group: str, member: str) -> dict[str, JSON]:
        """Where the record came from, as a failure record keeps it."""
        message = self.message
        raw = message.headers()
        key, key_b64 = decode_key(message.key())
        value = message.value()
        origin: dict[str, JSON] = {
            "transport": "kafka",
            "topic": message.topic(),
            "partition": message.partition(),
            "offset": message.offset(),
            "timestamp": int(self.event.occurred_at.timestamp() * 1000),
            "group": group,
            "member": member,
            "key": key,
        }
        if key_b64 is not None:
            origin["key_base64"] = key_b64
        if raw and decode_headers(raw)[1]:
            origin["raw_headers"] = encode_raw_headers(raw)
        if self.error is not None and value is not None:
            origin["value_base64"] = base64.b64encode(value).decode()
        if value is None:
            origin["tombstone"] = True
        return origin


def event_id(topic: str, partition: int, offset: int, headers: Mapping[str, str]) -> str:
    """The id of the event at (topic, partition, offset), or its ``redrive-event-id``."""
    return headers.get(EVENT_ID_HEADER) or f"kafka:{topic}:{partition}:{offset}"


def decode_headers(raw: RawHeaders | None) -> tuple[dict[str, str], bool]:
    """Headers as str→str (the last value of a repeated key wins), and whether that lost
    something (a repeated key, a null or non-UTF-8 value) so the raw list must be kept."""
    if not raw:
        return {}, False
    headers: dict[str, str] = {}
    lossy = False
    for name, value in raw:
        if value is None:
            lossy = True
            continue
        try:
            text = value.decode()
        except UnicodeDecodeError:
            text = value.decode("utf-8", "backslashreplace")
            lossy = True
        if name in headers:
            lossy = True
        headers[name] = text
    return headers, lossy


def encode_raw_headers(raw: RawHeaders) -> list[list[str | None]]:
    """The raw header list as JSON: [name, base64 value or null] pairs."""
    return [[n, None if v is None else base64.b64encode(v).decode()] for n, v in raw]


def raw_headers_of(origin: Mapping[str, JSON]) -> RawHeaders | None:
    """The raw header list kept in an origin, if it was lossy to decode."""
    pairs = origin.get("raw_headers")
    if not isinstance(pairs, list):
        return None
    return [(str(n), None if v is None else base64.b64decode(v)) for n, v in pairs]


def decode_key(key: bytes | None) -> tuple[str | None, str | None]:
    """The key as text, and its base64 when it is not UTF-8 (the text is then lossy)."""
    if key is None:
        return None, None
    try:
        return key.decode(), None
    except UnicodeDecodeError:
        return key.decode("utf-8", "backslashreplace"), base64.b64encode(key).decode()


def preview(value: bytes) -> str:
    """The first bytes of ``value`` as a Python bytes literal."""
    head = repr(value[:_PREVIEW])
    return head + (f"… ({len(value)} bytes)" if len(value) > _PREVIEW else "")


def decode_value(value: bytes | None) -> tuple[JSON, UndecodableValue | None]:
    """The JSON payload of ``value`` (None for a tombstone), or the decode error."""
    if value is None:
        return None, None
    try:
        return json.loads(value), None
    except (UnicodeDecodeError, ValueError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        return None, UndecodableValue(f"the value is not JSON ({reason}): {preview(value)}")


def timestamp_of(message: Any) -> datetime:
    """The record's timestamp (CreateTime or LogAppendTime), else now."""
    kind, millis = message.timestamp()
    if not kind or not millis or millis < 0:  # TIMESTAMP_NOT_AVAILABLE
        return utcnow()
    return datetime.fromtimestamp(millis / 1000, UTC)


class PartitionDecoder:
    """Builds the ``Event`` of each record of one partition (the hot path: keep it lean).

    What is the same for every record of the partition (its topic, the event source, the
    prefix of the derived event ids) is built once. Records produced within one
    millisecond share their timestamp, so the last timestamp's ``datetime`` is reused.
    """

    __slots__ = ("_at", "_millis", "_prefix", "partition", "source", "topic")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.source = f"kafka:{topic}"
        self._prefix = f"kafka:{topic}:{partition}:"  # event_id() of a record without one
        self._millis: int | None = None
        self._at = utcnow()

    def __call__(self, message: Any, offset: int) -> tuple[Event, UndecodableValue | None]:
        """The event of the record at ``offset`` and its decode error, if any."""
        raw = message.headers()
        if raw:
            headers = decode_headers(raw)[0]
            id = headers.get(EVENT_ID_HEADER) or self._prefix + str(offset)
            correlation = _first(headers, _CORRELATION)
            tenant = _first(headers, _TENANT)
        else:
            headers = {}
            id = self._prefix + str(offset)
            correlation = tenant = None
        key = message.key()
        if key is not None:
            try:
                key = key.decode()
            except UnicodeDecodeError:
                key = decode_key(key)[0]
        value = message.value()
        error = None
        if value is None:
            payload = None
        else:
            try:
                payload = parse(value)
            except (UnicodeDecodeError, ValueError):
                payload, error = decode_value(value)
        kind, millis = message.timestamp()
        if kind and millis == self._millis:
            occurred = self._at
        elif not kind or not millis or millis < 0:  # TIMESTAMP_NOT_AVAILABLE
            occurred = utcnow()
        else:
            occurred = self._at = datetime.fromtimestamp(millis / 1000, UTC)
            self._millis = millis
        event = build_event(
            self.topic, payload, id, key, headers, correlation, self.source, tenant, occurred
        )
        return event, error


def _first(headers: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if name in headers:
            return headers[name]
    return None
