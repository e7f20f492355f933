"""SQL shared by the relational stores: columns, row conversion, and the WHERE builder.

Each backend supplies a :class:`Dialect` (placeholder style, how JSON and times travel);
queries are built only from the fixed fragments below plus bound parameters.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from redrive.exceptions import StoreError
from redrive.models import Attempt, DeadLetter, Event, Status, format_time, parse_time
from redrive.stores.base import AuditEntry, Filter, Group, Page

TABLE = "redrive_dead_letters"

COLUMNS = (
    "id",
    "event_id",
    "topic",
    "handler",
    "status",
    "payload",
    "key",
    "headers",
    "correlation_id",
    "source",
    "tenant_id",
    "occurred_at",
    "attempts",
    "max_attempts",
    "error_type",
    "error_message",
    "traceback",
    "fingerprint",
    "history",
    "origin",
    "consumer",
    "version",
    "created_at",
    "updated_at",
    "next_attempt_at",
    "dead_at",
    "resolved_at",
    "replays",
    "lease_owner",
    "lease_expires_at",
)
COLUMN_LIST = ", ".join(COLUMNS)
JSON_COLUMNS = frozenset({"payload", "headers", "history", "origin", "consumer"})
TIME_COLUMNS = frozenset(
    {
        "occurred_at",
        "created_at",
        "updated_at",
        "next_attempt_at",
        "dead_at",
        "resolved_at",
        "lease_expires_at",
    }
)


class Dialect:
    """How values travel to and from one database. This one fits SQLite (JSON and times as
    text); the PostgreSQL store overrides it for JSONB and timestamptz."""

    param = "?"
    like = "LIKE"
    _consumer_cache: tuple[Any, Any] | None = None

    def encode_json(self, value: Any) -> Any:
        if not value and isinstance(value, dict):
            return "{}"  # most headers and origins: skip the encoder
        # allow_nan=False: NaN and Infinity are not JSON, and PostgreSQL refuses them.
        return json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, default=str, allow_nan=False
        )

    def encode_consumer(self, consumer: Any) -> Any:
        """Encode consumer info; one engine passes the same mapping on every record."""
        cached = self._consumer_cache
        if cached is not None and cached[0] is consumer:
            return cached[1]
        encoded = self.encode_json(dict(consumer))
        self._consumer_cache = (consumer, encoded)
        return encoded

    def decode_json(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value

    def encode_time(self, value: datetime | None) -> Any:
        return format_time(value)

    def decode_time(self, value: Any) -> datetime | None:
        return parse_time(value)

    def decode_required_time(self, value: Any) -> datetime:
        """A time from a NOT NULL column."""
        decoded = self.decode_time(value)
        if decoded is None:
            raise StoreError(f"expected a time, got {value!r}")
        return decoded

    def placeholders(self, count: int) -> str:
        return ", ".join([self.param] * count)


def record_to_row(record: DeadLetter, dialect: Dialect) -> tuple[Any, ...]:
    """The column values of ``record``, in ``COLUMNS`` order; ``StoreError`` if its payload
    or headers cannot be stored as JSON."""
    try:
        return _row(record, dialect)
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"dead letter {record.id} (event {record.event.id}) cannot be stored as JSON: {exc}"
        ) from exc


def _row(record: DeadLetter, dialect: Dialect) -> tuple[Any, ...]:
    event, enc, t = record.event, dialect.encode_json, dialect.encode_time
    return (
        record.id,
        event.id,
        event.topic,
        record.handler,
        record.status.value,
        enc(event.payload),
        event.key,
        enc(dict(event.headers)),
        event.correlation_id,
        event.source,
        event.tenant_id,
        t(event.occurred_at),
        record.attempts,
        record.max_attempts,
        record.error_type,
        record.error_message,
        record.traceback,
        record.fingerprint,
        enc([entry.to_dict() for entry in record.history]),
        enc(dict(record.origin)),
        dialect.encode_consumer(record.consumer),
        _version(record),
        t(record.created_at),
        t(record.updated_at),
        t(record.next_attempt_at),
        t(record.dead_at),
        t(record.resolved_at),
        record.replays,
        record.lease_owner,
        t(record.lease_expires_at),
    )


OPEN_STATUSES = ("scheduled", "retrying", "dead")
"""A record in one of these is open: a new failure of its (event id, handler) joins it."""


def _version(record: DeadLetter) -> str | None:
    version = record.consumer.get("version")
    return None if version is None else str(version)


def row_to_record(row: Sequence[Any], dialect: Dialect) -> DeadLetter:
    """Build a record from a row selected with ``COLUMN_LIST``."""
    (
        id_,
        event_id,
        topic,
        handler,
        status,
        payload,
        key,
        headers,
        correlation_id,
        source,
        tenant_id,
        occurred_at,
        attempts,
        max_attempts,
        error_type,
        error_message,
        tb,
        fingerprint,
        history,
        origin,
        consumer,
        _version,
        created_at,
        updated_at,
        next_attempt_at,
        dead_at,
        resolved_at,
        replays,
        lease_owner,
        lease_expires_at,
    ) = row
    dec, t = dialect.decode_json, dialect.decode_time
    created = t(created_at)
    assert created is not None
    event = Event(
        id=event_id,
        topic=topic,
        payload=dec(payload),
        key=key,
        headers=dec(headers),
        correlation_id=correlation_id,
        source=source,
        tenant_id=tenant_id,
        occurred_at=t(occurred_at) or created,
    )
    return DeadLetter(
        id=id_,
        event=event,
        handler=handler,
        status=Status(status),
        attempts=attempts,
        max_attempts=max_attempts,
        error_type=error_type,
        error_message=error_message,
        traceback=tb,
        fingerprint=fingerprint,
        history=tuple(Attempt.from_dict(item) for item in dec(history)),
        origin=dec(origin),
        consumer=dec(consumer),
        created_at=created,
        updated_at=t(updated_at) or created,
        next_attempt_at=t(next_attempt_at),
        dead_at=t(dead_at),
        resolved_at=t(resolved_at),
        replays=replays,
        lease_owner=lease_owner,
        lease_expires_at=t(lease_expires_at),
    )


GROUP_COLUMNS = (
    "fingerprint, topic, handler, error_type, count, first_seen, last_seen, message, sample"
)
"""The order both stores select a group's columns in (``group_from_row`` reads it)."""


def group_from_row(row: Sequence[Any], dialect: Dialect) -> Group:
    """A ``Group`` from a row in ``GROUP_COLUMNS`` order."""
    fingerprint, topic, handler, error_type, count, first, last, message, sample = row
    return Group(
        fingerprint=fingerprint,
        topic=topic,
        handler=handler,
        error_type=error_type,
        count=int(count),
        first_seen=dialect.decode_required_time(first),
        last_seen=dialect.decode_required_time(last),
        sample_message=message or "",
        sample_id=sample,
    )


AUDIT_COLUMNS = "id, at, actor, action, count, detail"


def audit_from_row(row: Sequence[Any], dialect: Dialect) -> AuditEntry:
    """An ``AuditEntry`` from a row in ``AUDIT_COLUMNS`` order."""
    entry_id, at, actor, action, count, detail = row
    return AuditEntry(
        id=entry_id,
        at=dialect.decode_required_time(at),
        actor=actor,
        action=action,
        count=int(count),
        detail=dialect.decode_json(detail),
    )


def page_of(rows: Sequence[Sequence[Any]], limit: int, dialect: Dialect) -> Page:
    """A page from rows selected with ``LIMIT limit + 1``: the extra row says there is more."""
    if limit <= 0:
        return Page([], None)
    items = [row_to_record(row, dialect) for row in rows[:limit]]
    return Page(items, items[-1].id if len(rows) > limit else None)


_EQUALS = (
    ("topic", "topic"),
    ("handler", "handler"),
    ("error_type", "error_type"),
    ("fingerprint", "fingerprint"),
    ("tenant_id", "tenant_id"),
    ("correlation_id", "correlation_id"),
    ("version", "version"),
)
_RANGES: tuple[tuple[str, str, str], ...] = (
    ("created_after", "created_at", ">="),
    ("created_before", "created_at", "<"),
    ("dead_after", "dead_at", ">="),
    ("dead_before", "dead_at", "<"),
    ("updated_before", "updated_at", "<"),
)


def escape_like(text: str) -> str:
    """Escape LIKE wildcards so ``text`` matches literally (with ``ESCAPE '\\'``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def build_where(
    where: Filter, dialect: Dialect, payload_text: Callable[[str], str] = lambda col: col
) -> tuple[str, list[Any]]:
    """The WHERE clause (``"1=1"`` when empty) and its parameters for ``where``.

    ``payload_text`` turns the payload column into text for the search (a cast in
    PostgreSQL; SQLite stores it as text already).
    """
    p = dialect.param
    clauses: list[str] = []
    params: list[Any] = []
    if where.statuses:
        clauses.append(f"status IN ({dialect.placeholders(len(where.statuses))})")
        params.extend(status.value for status in where.statuses)
    for attribute, column in _EQUALS:
        value = getattr(where, attribute)
        if value is not None:
            clauses.append(f"{column} = {p}")
            params.append(value)
    for attribute, column, operator in _RANGES:
        value = getattr(where, attribute)
        if value is not None:
            clauses.append(f"{column} {operator} {p}")
            params.append(dialect.encode_time(value))
    if where.ids:
        clauses.append(f"id IN ({dialect.placeholders(len(where.ids))})")
        params.extend(where.ids)
    if where.max_id is not None:
        clauses.append(f"id <= {p}")
        params.append(where.max_id)
    if where.max_replays is not None:
        clauses.append(f"replays < {p}")
        params.append(where.max_replays)
    if where.search:
        pattern = f"%{escape_like(where.search)}%"
        if where.search_payload:
            clauses.append(
                f"(error_message {dialect.like} {p} ESCAPE '\\' "
                f"OR {payload_text('payload')} {dialect.like} {p} ESCAPE '\\')"
            )
            params.extend([pattern, pattern])
        else:
            clauses.append(f"error_message {dialect.like} {p} ESCAPE '\\'")
            params.append(pattern)
    return (" AND ".join(clauses) or "1=1"), params
