"""From a JetStream message to an ``Event`` and its ``origin``, and back to bytes.

- topic: the message's subject; payload: the JSON body.
- event id: the ``Nats-Msg-Id`` header when present, else ``<stream>:<sequence>``: stable
  across redeliveries, so the store merges a redelivered failure into its open record.
- correlation id, tenant, source, key, occurred-at: the ``Redrive-*`` headers (occurred-at
  defaults to the time the stream stored the message).
- a body that is not UTF-8 JSON becomes ``UndecodableMessage``: a non-retriable failure whose
  record keeps a preview of the bytes (and the bytes themselves, in the origin, base64).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from redrive._json import parse
from redrive.exceptions import NonRetriableError
from redrive.models import JSON, Event, format_time, parse_time

MSG_ID = "Nats-Msg-Id"
CORRELATION_ID = "Redrive-Correlation-Id"
TENANT_ID = "Redrive-Tenant-Id"
SOURCE = "Redrive-Source"
KEY = "Redrive-Key"
OCCURRED_AT = "Redrive-Occurred-At"
REPLAY_OF = "Redrive-Replay-Of"
PREVIEW_BYTES = 200
KEEP_RAW_BYTES = 256 * 1024
"""Undecodable bodies up to this size are kept whole (base64) in the record's origin, so
``redrive retry --republish`` can send the very bytes back."""


class UndecodableMessage(NonRetriableError):
    """The message body is not UTF-8 JSON; no handler can run on it."""


def decode(data: bytes) -> JSON:
    """The JSON body; raises ``UndecodableMessage`` naming what is wrong, with a preview."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UndecodableMessage(f"body is not UTF-8 (byte {exc.start}): {preview(data)}") from None
    try:
        return parse(text)
    except json.JSONDecodeError as exc:
        raise UndecodableMessage(
            f"body is not JSON ({exc.msg} at column {exc.colno}): {preview(data)}"
        ) from None


def preview(data: bytes) -> str:
    """The first bytes of ``data``, printable (``repr`` escapes), and its size."""
    head = repr(data[:PREVIEW_BYTES])
    more = "..." if len(data) > PREVIEW_BYTES else ""
    return f"{head}{more} ({len(data)} bytes)"


def event_of(
    subject: str,
    headers: Mapping[str, str] | None,
    payload: JSON,
    *,
    stream: str,
    sequence: int,
    stored_at: datetime | None,
) -> Event:
    """The event a message carries."""
    headers = dict(headers or {})
    occurred = _time(headers.get(OCCURRED_AT)) or stored_at or datetime.now(UTC)
    return Event(
        id=headers.get(MSG_ID) or f"{stream}:{sequence}",
        topic=subject,
        payload=payload,
        key=headers.get(KEY),
        headers=headers,
        correlation_id=headers.get(CORRELATION_ID),
        source=headers.get(SOURCE),
        tenant_id=headers.get(TENANT_ID),
        occurred_at=occurred,
    )


def undecodable_payload(data: bytes) -> JSON:
    """What a record keeps as the payload of a message that could not be decoded."""
    return {"undecodable": True, "size": len(data), "preview": preview(data)}


def origin_of(
    *,
    stream: str,
    consumer: str,
    sequence: int,
    delivered: int,
    subject: str,
    raw: bytes | None = None,
) -> dict[str, JSON]:
    """The record's ``origin``: where the message is in JetStream, and when it came."""
    origin: dict[str, JSON] = {
        "transport": "nats",
        "stream": stream,
        "consumer": consumer,
        "sequence": sequence,
        "delivered": delivered,
        "subject": subject,
        "received_at": format_time(datetime.now(UTC)),
    }
    if raw is not None and len(raw) <= KEEP_RAW_BYTES:
        origin["body_base64"] = base64.b64encode(raw).decode("ascii")
    return origin


def body_of(record_payload: JSON, origin: Mapping[str, Any]) -> bytes:
    """The bytes to publish again for a record: the kept raw body, else the payload as JSON."""
    raw = origin.get("body_base64")
    if isinstance(raw, str):
        return base64.b64decode(raw)
    return json.dumps(record_payload, separators=(",", ":"), ensure_ascii=False).encode()


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return parse_time(text)
    except (ValueError, OverflowError):
        return None


def delivery(msg: Any) -> tuple[int, int, datetime | None]:
    """(stream sequence, delivery count, stored time) from the ack subject, parsed here
    (several times cheaper than ``msg.metadata``):
    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>``, or with
    ``<domain>.<account hash>`` after ``ACK`` and a token at the end."""
    tokens = msg.reply.split(".")
    if len(tokens) == 9:
        delivered, sequence, nanos = tokens[4], tokens[5], tokens[7]
    elif len(tokens) >= 11:
        delivered, sequence, nanos = tokens[6], tokens[7], tokens[9]
    else:  # not a JetStream delivery: let the client's parser say why
        meta = msg.metadata
        return meta.sequence.stream, meta.num_delivered, meta.timestamp
    return int(sequence), int(delivered), datetime.fromtimestamp(int(nanos) / 1e9, UTC)
