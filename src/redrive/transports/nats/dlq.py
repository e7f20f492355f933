"""The DLQ stream copy of a dead letter, for broker-native tools and other consumers.

The body is the original message's bytes; the headers are ASCII scalars naming where it came
from and why it died (the traceback stays in the store). The copy's ``Nats-Msg-Id`` is
derived from (stream, sequence, consumer, handler): a copy sent again after a crash, within
the DLQ stream's duplicate window, is dropped by the server instead of stored twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from redrive.models import DeadLetter, format_time
from redrive.transports.nats.envelope import MSG_ID

RECORD_ID = "Redrive-Record-Id"
EVENT_ID = "Redrive-Event-Id"
ORIGINAL_SUBJECT = "Redrive-Original-Subject"
ORIGINAL_STREAM = "Redrive-Original-Stream"
ORIGINAL_SEQUENCE = "Redrive-Original-Sequence"
ORIGINAL_CONSUMER = "Redrive-Original-Consumer"
ORIGINAL_MSG_ID = "Redrive-Original-Msg-Id"
HANDLER = "Redrive-Handler"
ERROR_TYPE = "Redrive-Error-Type"
ERROR_MESSAGE = "Redrive-Error-Message"
FINGERPRINT = "Redrive-Fingerprint"
ATTEMPTS = "Redrive-Attempts"
DEAD_AT = "Redrive-Dead-At"
MAX_MESSAGE = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 822 field names: printable ASCII but ':'


def ascii_value(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` as one line of printable ASCII (escapes for the rest), at most ``limit``."""
    flat = " ".join(str(text).split())
    safe = flat.encode("ascii", "backslashreplace").decode("ascii")
    safe = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", safe)
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."


def copy_id(stream: str, sequence: int, consumer: str, handler: str) -> str:
    """The DLQ copy's ``Nats-Msg-Id``: the same for every try at copying one dead letter."""
    return ascii_value(f"redrive-dlq:{stream}:{sequence}:{consumer}:{handler}", 1000)


def copy_headers(record: DeadLetter, original: Mapping[str, str] | None = None) -> dict[str, str]:
    """The DLQ copy's headers: the original ones (but ``Nats-*``), then redrive's."""
    origin = record.origin
    stream, sequence = str(origin.get("stream", "")), int(origin.get("sequence") or 0)
    consumer = str(origin.get("consumer", ""))
    headers = {
        name: ascii_value(value, 4000)
        for name, value in (original or {}).items()
        if _HEADER_NAME.match(name) and not name.lower().startswith("nats-")
    }
    original_msg_id = (original or {}).get(MSG_ID)
    if original_msg_id:
        headers[ORIGINAL_MSG_ID] = ascii_value(original_msg_id, 1000)
    headers.update(
        {
            MSG_ID: copy_id(stream, sequence, consumer, record.handler),
            RECORD_ID: record.id,
            EVENT_ID: ascii_value(record.event.id, 1000),
            ORIGINAL_SUBJECT: ascii_value(record.topic, 1000),
            ORIGINAL_STREAM: ascii_value(stream),
            ORIGINAL_SEQUENCE: str(sequence),
            ORIGINAL_CONSUMER: ascii_value(consumer),
            HANDLER: ascii_value(record.handler),
            ERROR_TYPE: ascii_value(record.error_type),
            ERROR_MESSAGE: ascii_value(record.error_message) or "-",
            FINGERPRINT: record.fingerprint,
            ATTEMPTS: str(record.attempts),
            DEAD_AT: format_time(record.dead_at or record.updated_at) or "",
        }
    )
    return {name: value for name, value in headers.items() if value}


async def publish_copy(
    js: Any,
    record: DeadLetter,
    body: bytes,
    subject: str,
    *,
    stream: str,
    original: Mapping[str, str] | None = None,
) -> int:
    """Publish the copy to ``subject`` in ``stream`` and wait for the server's ack; return
    the copy's sequence in the DLQ stream (the first one's, if this copy is a duplicate)."""
    ack = await js.publish(
        subject, body, headers=copy_headers(record, original), stream=stream, timeout=5.0
    )
    return int(ack.seq)
