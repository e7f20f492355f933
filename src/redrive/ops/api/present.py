"""Records, stats and groups as JSON for responses, pages and exports: always masked.

The store keeps the original payload; what an operator sees goes through the config's
``Redactor.mask`` (records) and the service's scrubbed groups. An edited payload that
comes back with masks in it gets the original values put back, so editing a masked
record never replaces a secret with ``***``.
"""

from __future__ import annotations

from typing import Any

from redrive.models import JSON, DeadLetter, format_time
from redrive.redact import Redactor
from redrive.stores.base import AuditEntry, Group, Stats

SUMMARY = (
    "id",
    "event_id",
    "topic",
    "handler",
    "status",
    "attempts",
    "max_attempts",
    "error_type",
    "error_message",
    "fingerprint",
    "key",
    "tenant_id",
    "correlation_id",
    "created_at",
    "updated_at",
    "next_attempt_at",
    "dead_at",
    "resolved_at",
    "replays",
)


def summary(record: DeadLetter, redactor: Redactor) -> dict[str, Any]:
    """The listing fields of a record (its error message scrubbed of masked values)."""
    record = redactor.mask(record)
    event = record.event
    return {
        "id": record.id,
        "event_id": event.id,
        "topic": event.topic,
        "handler": record.handler,
        "status": record.status.value,
        "attempts": record.attempts,
        "max_attempts": record.max_attempts,
        "error_type": record.error_type,
        "error_message": record.error_message,
        "fingerprint": record.fingerprint,
        "key": event.key,
        "tenant_id": event.tenant_id,
        "correlation_id": event.correlation_id,
        "created_at": format_time(record.created_at),
        "updated_at": format_time(record.updated_at),
        "next_attempt_at": format_time(record.next_attempt_at),
        "dead_at": format_time(record.dead_at),
        "resolved_at": format_time(record.resolved_at),
        "replays": record.replays,
    }


def full(record: DeadLetter, redactor: Redactor) -> dict[str, Any]:
    """The whole record, with payload, headers and payloads kept in history masked."""
    return redactor.mask(record).to_dict()


def diff_patch(old: JSON, new: JSON) -> JSON:
    """The JSON merge patch (RFC 7386) that turns ``old`` into ``new`` (an edited payload).

    Merge patches cannot set a value to ``null``: a key edited to ``null`` is removed.
    """
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return new
    patch: dict[str, JSON] = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = diff_patch(old[key], value)
    return patch


def stats(data: Stats) -> dict[str, Any]:
    """Totals by status and per-topic counts and ages."""
    topics = sorted(set(data.counts) | set(data.oldest_dead_at))
    totals: dict[str, int] = {}
    for by_status in data.counts.values():
        for status, n in by_status.items():
            totals[status.value] = totals.get(status.value, 0) + n
    return {
        "totals": totals,
        "topics": [
            {
                "topic": topic,
                "counts": {s.value: n for s, n in data.counts.get(topic, {}).items()},
                "oldest_dead_at": format_time(data.oldest_dead_at.get(topic)),
                "new_dead_last_hour": data.new_dead_last_hour.get(topic, 0),
                "new_dead_last_day": data.new_dead_last_day.get(topic, 0),
                **_redead(data, topic),
            }
            for topic in topics
        ],
    }


def _redead(data: Stats, topic: str) -> dict[str, int]:
    """Replays that died again, counted apart from first deaths, once the store counts
    them (``Stats.redead_last_hour`` / ``redead_last_day``); nothing before that."""
    hour = getattr(data, "redead_last_hour", None)
    day = getattr(data, "redead_last_day", None)
    if hour is None or day is None:
        return {}
    return {"redead_last_hour": hour.get(topic, 0), "redead_last_day": day.get(topic, 0)}


def group(item: Group) -> dict[str, Any]:
    """An error group."""
    return {
        "fingerprint": item.fingerprint,
        "topic": item.topic,
        "handler": item.handler,
        "error_type": item.error_type,
        "count": item.count,
        "first_seen": format_time(item.first_seen),
        "last_seen": format_time(item.last_seen),
        "sample_message": item.sample_message,
        "sample_id": item.sample_id,
    }


def audit(entry: AuditEntry, redactor: Redactor) -> dict[str, Any]:
    """An audit entry (payloads kept in it masked)."""
    detail = redactor.detail(entry.detail)
    return {
        "id": entry.id,
        "at": format_time(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "count": entry.count,
        "detail": detail,
    }
