"""Builders of test records, so tests state only what matters to them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from redrive._ids import new_id
from redrive.models import Attempt, DeadLetter, Event, Status, utcnow


def make_record(
    *,
    topic: str = "orders.created",
    handler: str = "app.send_receipt",
    status: Status = Status.DEAD,
    payload: Any = None,
    error_type: str = "ConnectionError",
    error_message: str = "downstream unavailable",
    fingerprint: str = "f" * 16,
    created_at: datetime | None = None,
    next_attempt_at: datetime | None = None,
    tenant_id: str | None = None,
    correlation_id: str | None = None,
    version: str | None = None,
    replays: int = 0,
    attempts: int | None = None,
) -> DeadLetter:
    """A dead letter with plausible defaults."""
    now = created_at or utcnow()
    consumer = {"service": "test", "host": "localhost", "pid": 1}
    if version is not None:
        consumer["version"] = version
    return DeadLetter(
        id=new_id(),
        event=Event(
            topic=topic,
            payload={"order_id": 1} if payload is None else payload,
            key="k1",
            headers={"h": "v"},
            tenant_id=tenant_id,
            correlation_id=correlation_id,
        ),
        handler=handler,
        status=status,
        # A scheduled record has a retry left; a dead one used them all.
        attempts=attempts if attempts is not None else (1 if status == Status.SCHEDULED else 3),
        max_attempts=3,
        error_type=error_type,
        error_message=error_message,
        traceback="Traceback (most recent call last):\n...",
        fingerprint=fingerprint,
        created_at=now,
        updated_at=now,
        history=(Attempt(kind="attempt", at=now, error_type=error_type, duration=0.01),),
        origin={"kafka": {"partition": 0, "offset": 7}},
        consumer=consumer,
        next_attempt_at=next_attempt_at
        if next_attempt_at is not None
        else (now if status == Status.SCHEDULED else None),
        dead_at=now if status == Status.DEAD else None,
        replays=replays,
    )


def ago(seconds: float) -> datetime:
    """The time ``seconds`` ago."""
    return utcnow() - timedelta(seconds=seconds)
