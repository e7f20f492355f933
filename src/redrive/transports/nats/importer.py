"""Dead letters already in a DLQ stream, read into the store (``redrive nats import``).

Three kinds of message are understood:

- redrive's own DLQ copies (``Redrive-*`` headers): the record keeps its id, so importing
  into the store that wrote it adds nothing;
- seed-style copies from a hand-written ``EventSubscriber``: the metadata (original subject,
  error type, failure reason, retry count, traceback, handler...) in the headers, or a JSON
  body ``{"metadata": {...}, "original_message": "..."}``;
- anything else: a dead letter of the subject the message was published to (less the DLQ
  prefix), with error type ``Unknown``.

Ids of records not made by redrive are derived from (DLQ stream, sequence) and the message
time, so importing the same stream twice adds nothing the second time.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

from redrive._ids import derived_id
from redrive.models import JSON, Attempt, DeadLetter, Event, parse_time
from redrive.transports._imported import imported_dead_letter
from redrive.transports.nats import dlq as h
from redrive.transports.nats.envelope import (
    UndecodableMessage,
    decode,
    event_of,
    undecodable_payload,
)
from redrive.transports.nats.stored import StoredMessage, get_stored

UNKNOWN_HANDLER = "unknown"
_SEED_KEYS = {
    "original_subject",
    "original_event_id",
    "correlation_id",
    "retry_count",
    "failure_reason",
    "failure_timestamp",
    "error_type",
    "error_traceback",
    "consumer_service",
    "consumer_version",
    "handler_function",
    "retry_timestamps",
    "retry_errors",
    "tenant_id",
}


async def read_stream(js: Any, stream: str, *, prefix: str = "dlq") -> AsyncIterator[DeadLetter]:
    """Every message of ``stream`` as a dead letter, oldest first."""
    info = await js.stream_info(stream)
    direct = bool(info.config.allow_direct)
    if info.state.messages == 0:
        return
    for sequence in range(info.state.first_seq, info.state.last_seq + 1):
        stored = await get_stored(js, stream, sequence, direct=direct)
        if stored is not None:  # deleted messages leave gaps
            yield to_record(stored, prefix=prefix)


def to_record(stored: StoredMessage, *, prefix: str = "dlq") -> DeadLetter:
    """The dead letter a DLQ stream message stands for."""
    if h.RECORD_ID in stored.headers:
        return _redrive_copy(stored)
    return _foreign(stored, prefix)


def _redrive_copy(stored: StoredMessage) -> DeadLetter:
    hd = stored.headers
    subject = hd.get(h.ORIGINAL_SUBJECT) or stored.subject
    stream = hd.get(h.ORIGINAL_STREAM, "")
    sequence = _int(hd.get(h.ORIGINAL_SEQUENCE), 0)
    original = {k: v for k, v in hd.items() if not k.startswith("Redrive-Original-")}
    for name in (
        h.RECORD_ID,
        h.EVENT_ID,
        h.HANDLER,
        h.ERROR_TYPE,
        h.ERROR_MESSAGE,
        h.FINGERPRINT,
        h.ATTEMPTS,
        h.DEAD_AT,
        "Nats-Msg-Id",
    ):
        original.pop(name, None)
    if h.ORIGINAL_MSG_ID in hd:
        original["Nats-Msg-Id"] = hd[h.ORIGINAL_MSG_ID]
    payload, raw = _payload(stored.data)
    event = event_of(
        subject, original, payload, stream=stream, sequence=sequence, stored_at=stored.time
    )
    event = Event.from_dict({**event.to_dict(), "id": hd.get(h.EVENT_ID) or event.id})
    return _record(
        record_id=hd[h.RECORD_ID],
        event=event,
        handler=hd.get(h.HANDLER) or UNKNOWN_HANDLER,
        error_type=hd.get(h.ERROR_TYPE) or "Unknown",
        message=hd.get(h.ERROR_MESSAGE, ""),
        traceback="",
        attempts=_int(hd.get(h.ATTEMPTS), 1),
        dead_at=parse_time(hd.get(h.DEAD_AT)) if hd.get(h.DEAD_AT) else stored.time,
        fingerprint=hd.get(h.FINGERPRINT),
        stored=stored,
        stream=stream,
        sequence=sequence,
        consumer=hd.get(h.ORIGINAL_CONSUMER, ""),
        raw=raw,
    )


def _foreign(stored: StoredMessage, prefix: str) -> DeadLetter:
    meta, body = _seed_metadata(stored)
    subject = str(meta.get("original_subject") or _strip(stored.subject, prefix))
    headers = {k: v for k, v in stored.headers.items() if _norm(k) not in _SEED_KEYS}
    payload, raw = _payload(body)
    event = event_of(
        subject, headers, payload, stream="", sequence=stored.sequence, stored_at=stored.time
    )
    event = Event.from_dict(
        {
            **event.to_dict(),
            "id": str(meta.get("original_event_id") or f"{stored.stream}:{stored.sequence}"),
            "correlation_id": meta.get("correlation_id") or event.correlation_id,
            "tenant_id": meta.get("tenant_id") or event.tenant_id,
            "source": meta.get("consumer_service") or event.source,
        }
    )
    attempts = _int(meta.get("retry_count"), 1)
    return _record(
        record_id=_stable_id(stored),
        event=event,
        handler=str(meta.get("handler_function") or UNKNOWN_HANDLER),
        error_type=str(meta.get("error_type") or "Unknown"),
        message=str(meta.get("failure_reason") or ""),
        traceback=str(meta.get("error_traceback") or ""),
        attempts=max(attempts, 1),
        dead_at=_time(meta.get("failure_timestamp")) or stored.time,
        fingerprint=None,
        stored=stored,
        stream="",
        sequence=0,
        consumer=str(meta.get("consumer_service") or ""),
        raw=raw,
        history=_seed_history(meta),
    )


def _seed_metadata(stored: StoredMessage) -> tuple[dict[str, Any], bytes]:
    """(metadata, original body): from a ``{"metadata", "original_message"}`` body, else
    from the headers (names compared without case, ``X-`` prefix, ``-`` or ``_``)."""
    try:
        body = json.loads(stored.data)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("metadata"), dict):
        original = body.get("original_message")
        data = original.encode() if isinstance(original, str) else json.dumps(original).encode()
        return dict(body["metadata"]), data
    meta = {_norm(k): v for k, v in stored.headers.items() if _norm(k) in _SEED_KEYS}
    return meta, stored.data


def _seed_history(meta: Mapping[str, Any]) -> tuple[Attempt, ...]:
    times, errors = meta.get("retry_timestamps"), meta.get("retry_errors")
    if not isinstance(times, list):
        return ()
    errors = errors if isinstance(errors, list) else []
    history = []
    for n, when in enumerate(times):
        at = _time(when)
        if at is not None:
            message = str(errors[n]) if n < len(errors) else None
            history.append(
                Attempt(
                    kind="attempt", at=at, error_type=meta.get("error_type"), error_message=message
                )
            )
    return tuple(history)


def _record(
    *,
    record_id: str,
    event: Event,
    handler: str,
    error_type: str,
    message: str,
    traceback: str,
    attempts: int,
    dead_at: datetime | None,
    fingerprint: str | None,
    stored: StoredMessage,
    stream: str,
    sequence: int,
    consumer: str,
    raw: bytes | None,
    history: tuple[Attempt, ...] = (),
) -> DeadLetter:
    when = dead_at or datetime.now(UTC)
    origin: dict[str, JSON] = {
        "transport": "nats",
        "stream": stream,
        "consumer": consumer,
        "sequence": sequence,
        "delivered": attempts,
        "subject": event.topic,
        "received_at": None,
        "dlq_stream": stored.stream,
        "dlq_sequence": stored.sequence,
        "imported": True,
    }
    if raw is not None:
        origin["body_base64"] = base64.b64encode(raw).decode("ascii")
    return imported_dead_letter(
        record_id,
        event,
        handler,
        error_type,
        message,
        traceback,
        when,
        origin,
        attempts=attempts,
        fingerprint_=fingerprint,
        history=history,
    )


def _payload(data: bytes) -> tuple[JSON, bytes | None]:
    try:
        return decode(data), None
    except UndecodableMessage:
        return undecodable_payload(data), data


def _stable_id(stored: StoredMessage) -> str:
    """An id fixed by (stream, sequence), ordered by the message's time."""
    at = stored.time or datetime(2000, 1, 1, tzinfo=UTC)
    return derived_id(at, f"{stored.stream}:{stored.sequence}")


def _norm(name: str) -> str:
    key = name.lower().replace("-", "_")
    return key[2:] if key.startswith("x_") else key


def _strip(subject: str, prefix: str) -> str:
    return subject[len(prefix) + 1 :] if subject.startswith(prefix + ".") else subject


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _time(value: Any) -> datetime | None:
    try:
        return parse_time(value) if isinstance(value, str) and value else None
    except (ValueError, OverflowError):
        return None
