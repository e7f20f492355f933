"""The dead letter recorded when an outbox row runs out of attempts.

It carries the full error context (type, message, traceback, fingerprint) and points
back at the row (``origin.outbox_id``), so the dead event shows in ``redrive list``, the
API and the console like any other dead letter.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from redrive._ids import new_id
from redrive.core.failures import error_message, fingerprint, format_traceback
from redrive.models import JSON, Attempt, DeadLetter, Status
from redrive.outbox.model import OutboxEvent
from redrive.policy import RetryPolicy, error_name


def failure_text(error: BaseException) -> str:
    """``last_error`` of a row: the error's type and message on one line."""
    return f"{error_name(error)}: {' '.join(error_message(error).split())}"[:2000]


def dead_letter(
    row: OutboxEvent,
    error: BaseException,
    attempts: int,
    policy: RetryPolicy,
    *,
    name: str,
    consumer: Mapping[str, JSON],
    now: datetime,
) -> DeadLetter:
    """The dead letter of ``row``, whose delivery failed for the last time with ``error``."""
    event = row.to_event()
    detail: dict[str, JSON] = {"outbox_id": row.id, "decision": "outbox"}
    if row.last_error:
        detail["previous_error"] = row.last_error
    entry = Attempt(
        kind="attempt",
        at=now,
        error_type=error_name(error),
        error_message=error_message(error),
        detail=detail,
    )
    origin: dict[str, JSON] = {"outbox_id": row.id, "outbox_table": "redrive_outbox"}
    if row.aggregate_type is not None:
        origin["aggregate_type"] = row.aggregate_type
    if row.aggregate_id is not None:
        origin["aggregate_id"] = row.aggregate_id
    return DeadLetter(
        id=new_id(),
        event=event,
        handler=name,
        status=Status.DEAD,
        attempts=attempts,
        max_attempts=policy.max_attempts,
        error_type=error_name(error),
        error_message=error_message(error),
        traceback=format_traceback(error),
        fingerprint=fingerprint(event.topic, name, error),
        created_at=now,
        updated_at=now,
        history=(entry,),
        origin=origin,
        consumer=dict(consumer),
        dead_at=now,
    )
