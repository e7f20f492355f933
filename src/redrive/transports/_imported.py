"""What the transports' importers share: the dead letter of a message found on a broker's
DLQ (a stream or a topic) that another system, or an older redrive, put there."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime

from redrive.core.failures import normalise_message
from redrive.models import JSON, Attempt, DeadLetter, Event, Status


def fingerprint(topic: str, handler: str, error_type: str, message: str) -> str:
    """The error group of an imported failure (no stack: only its words)."""
    parts = (topic, handler, error_type, normalise_message(message), "")
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()


def imported_dead_letter(
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
    fingerprint_: str | None = None,
    history: tuple[Attempt, ...] = (),
) -> DeadLetter:
    """A ``dead`` record of an imported failure; its history is one ``imported`` attempt
    unless the message carried one."""
    if not history:
        history = (
            Attempt(
                kind="attempt",
                at=at,
                error_type=error_type,
                error_message=message,
                detail={"decision": "imported"},
            ),
        )
    return DeadLetter(
        id=record_id,
        event=event,
        handler=handler,
        status=Status.DEAD,
        attempts=attempts,
        max_attempts=attempts,
        error_type=error_type,
        error_message=message,
        traceback=traceback,
        fingerprint=fingerprint_ or fingerprint(event.topic, handler, error_type, message),
        created_at=at,
        updated_at=at,
        history=history,
        origin=dict(origin),
        dead_at=at,
    )
