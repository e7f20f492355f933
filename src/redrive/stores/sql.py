"""SQL shared by the relational stores: columns, row conversion, and the WHERE builder.

Each backend supplies a :class:`Dialect` (placeholder style, how JSON and times travel);
queries are built only from the fixed fragments below plus bound parameters.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from redrive._batch import chunks
from redrive._json import dumps, parse
from redrive.exceptions import StoreError
from redrive.models import JSON, Attempt, DeadLetter, Event, Status, format_time, parse_time
from redrive.stores.base import AuditEntry, Change, Filter, Group, Page
from redrive.stores.paging import DEFAULT_SORT, Segment, cursor_of, segments

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


class Dialect:
    """How values travel to and from one database. This one fits SQLite (JSON and times as
    text); the PostgreSQL store overrides it for JSONB and timestamptz."""

    param = "?"
    like = "LIKE"
    _consumer_cache: tuple[Any, Any] | None = None

    def encode_json(self, value: Any) -> Any:
        if not value and isinstance(value, dict):
            return "{}"  # most headers and origins: skip the encoder
        return dumps(value)

    def encode_consumer(self, consumer: Any) -> Any:
        """Encode consumer info; one engine passes the same mapping on every record."""
        cached = self._consumer_cache
        if cached is not None and cached[0] is consumer:
            return cached[1]
        encoded = self.encode_json(dict(consumer))
        self._consumer_cache = (consumer, encoded)
        return encoded

    def decode_json(self, value: Any) -> Any:
        return parse(value) if isinstance(value, (str, bytes)) else value

    encode_time: Callable[[datetime | None], Any] = staticmethod(format_time)
    """A time as it travels (ISO-8601 text here): ``format_time`` itself, one call less
    for each of a row's seven times."""

    def decode_time(self, value: Any) -> datetime | None:
        return parse_time(value)

    def decode_required_time(self, value: Any) -> datetime:
        """A time from a NOT NULL column."""
        decoded = self.decode_time(value)
        if decoded is None:
            raise StoreError(f"expected a time, got {value!r}")
        return decoded

    max_ids = 500
    """Ids per statement: well under SQLite's limit of bound parameters."""

    def placeholders(self, count: int) -> str:
        return ", ".join([self.param] * count)

    def in_(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column`` is one of ``values``: the condition and its parameters."""
        return f"{column} IN ({self.placeholders(len(values))})", list(values)


def record_to_row(record: DeadLetter, dialect: Dialect) -> tuple[Any, ...]:
    """The column values of ``record``, in ``COLUMNS`` order; ``StoreError`` if its payload
    or headers cannot be stored as JSON."""
    try:
        return _row(record, dialect)
    except RecursionError:
        raise StoreError(
            f"dead letter {record.id} (event {record.event.id}) cannot be stored: its payload "
            "or headers nest too deeply to encode as JSON"
        ) from None
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError too: a lone surrogate
        raise StoreError(
            f"dead letter {record.id} (event {record.event.id}) cannot be stored as JSON: {exc}"
        ) from exc


def _row(record: DeadLetter, dialect: Dialect) -> tuple[Any, ...]:
    event, enc, t = record.event, dialect.encode_json, dialect.encode_time
    # A new failure is created, updated (and dead) at one instant: format it once.
    created_at, updated_at, dead_at = record.created_at, record.updated_at, record.dead_at
    created = t(created_at)
    updated = created if updated_at == created_at else t(updated_at)
    dead = updated if dead_at == updated_at else t(dead_at)  # t(None) is None
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
        created,
        updated,
        t(record.next_attempt_at),
        dead,
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


def page_of(
    rows: Sequence[Sequence[Any]], limit: int, dialect: Dialect, sort: str = DEFAULT_SORT
) -> Page:
    """A page from rows selected with ``LIMIT limit + 1``: the extra row says there is more,
    and the next cursor carries the last record's sort key."""
    if limit <= 0:
        return Page([], None)
    items = [row_to_record(row, dialect) for row in rows[:limit]]
    return Page(items, cursor_of(items[-1], sort) if len(rows) > limit else None)


_EQUALS = (
    ("topic", "topic"),
    ("handler", "handler"),
    ("error_type", "error_type"),
    ("fingerprint", "fingerprint"),
    ("tenant_id", "tenant_id"),
    ("correlation_id", "correlation_id"),
    ("version", "version"),
    ("event_id", "event_id"),
    ("key", "key"),
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


class SQLStore:
    """The store methods whose SQL is the same on every SQL backend.

    A backend subclasses it and supplies its ``dialect`` and three primitives, in the
    template-method style of dramatiq's result backends (which implement only ``_get`` and
    ``_store``): ``_rows`` (a read), ``_write`` (one writing statement in its own
    transaction; its row count) and ``_write_rows`` (the same, returning rows). It keeps
    only its own statements: claims, ``add``/``save``, ``stats``, ``groups``, the timeline,
    ``meta_put``, ``_transition``, ``_insert_ignore``, migrations.

    .. versionadded:: 0.2
    """

    dialect: Dialect
    url: str

    # -- primitives (each backend) --------------------------------------------------------
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        raise NotImplementedError

    def _write_rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def _transition(self, ids: Sequence[str], change: Change) -> list[str]:
        raise NotImplementedError

    def _insert_ignore(self, records: list[DeadLetter]) -> int:
        raise NotImplementedError

    def _where(self, where: Filter) -> tuple[str, list[Any]]:
        """The WHERE clause of ``where`` (a backend may search its payload differently)."""
        return build_where(where, self.dialect)

    writes_together = False

    def together(self) -> AbstractContextManager[None]:
        """Each write commits on its own (a backend whose writers share one lock overrides
        this to commit them as one transaction, and sets ``writes_together``)."""
        return contextlib.nullcontext()

    # -- reads ----------------------------------------------------------------------------
    def get(self, record_id: str) -> DeadLetter | None:
        p = self.dialect.param
        rows = self._rows(f"SELECT {COLUMN_LIST} FROM {TABLE} WHERE id = {p}", (record_id,))
        return row_to_record(rows[0], self.dialect) if rows else None

    def find(
        self, where: Filter, *, limit: int, cursor: str | None = None, sort: str = DEFAULT_SORT
    ) -> Page:
        clause, params = self._where(where)
        wanted = max(limit, 0) + 1
        rows: list[Any] = []
        by_status = sort.lstrip("-") != "created" and len(where.statuses) != 1
        for part in segments(sort, cursor, self.dialect.param, self.dialect.encode_time):
            if not by_status:
                rows += self._segment(clause, params, part, wanted - len(rows))
            else:
                rows += self._merged(where, part, wanted - len(rows))
            if len(rows) >= wanted:
                break
        return page_of(rows, limit, self.dialect, sort)

    def _segment(self, clause: str, params: list[Any], part: Segment, n: int) -> list[Any]:
        p = self.dialect.param
        sql = (
            f"SELECT {COLUMN_LIST} FROM {TABLE} WHERE {clause}{part.condition} "
            f"ORDER BY {part.order} LIMIT {p}"
        )
        return self._rows(sql, (*params, *part.params, n))

    def _merged(self, where: Filter, part: Segment, n: int) -> list[Any]:
        """A sorted range over several statuses (or all): the first ``n`` of each status's
        own range (an index range scan on (status, key, id)), merged. One query over all
        statuses would sort every matching row instead (0.5-0.9 s at a million)."""
        ranges = []
        for status in where.statuses or tuple(Status):
            clause, params = self._where(where.replace(statuses=(status,)))
            ranges.append(self._segment(clause, params, part, n))
        position = COLUMNS.index(part.column) if part.column else 0
        merged = heapq.merge(
            *ranges, key=lambda row: (row[position], row[0]), reverse=part.descending
        )
        return list(itertools.islice(merged, n))

    def ids(self, where: Filter, *, limit: int, after: str | None = None) -> list[str]:
        p = self.dialect.param
        clause, params = self._where(where)
        if after is not None:
            clause += f" AND id > {p}"
            params.append(after)
        sql = f"SELECT id FROM {TABLE} WHERE {clause} ORDER BY id LIMIT {p}"
        return [row[0] for row in self._rows(sql, (*params, limit))]

    def count(self, where: Filter) -> int:
        if where == Filter(statuses=where.statuses):  # maintained counts: a few rows
            rows = self._rows("SELECT status, n FROM redrive_counts")
            wanted = {status.value for status in where.statuses}
            return sum(int(n) for status, n in rows if not wanted or status in wanted)
        clause, params = self._where(where)
        return int(self._rows(f"SELECT COUNT(*) FROM {TABLE} WHERE {clause}", params)[0][0])

    # -- writes shared by every backend ---------------------------------------------------
    def transition(self, ids: Sequence[str], change: Change) -> list[str]:
        changed: list[str] = []
        for chunk in chunks(ids, self.dialect.max_ids):
            changed.extend(self._transition(chunk, change))
        return changed

    def delete(self, ids: Sequence[str], *, where: Filter | None = None) -> int:
        condition, params = self._where(where or Filter())
        deleted = 0
        for chunk in chunks(ids, self.dialect.max_ids):
            among, chosen = self.dialect.in_("id", chunk)
            sql = f"DELETE FROM {TABLE} WHERE {among} AND {condition}"
            deleted += self._write(sql, (*chosen, *params))
        return deleted

    def import_records(self, records: Iterable[DeadLetter]) -> int:
        added = 0
        batch: list[DeadLetter] = []
        for record in records:
            batch.append(record)
            if len(batch) >= self.dialect.max_ids:
                added += self._insert_ignore(batch)
                batch = []
        if batch:
            added += self._insert_ignore(batch)
        return added

    # -- audit trail ----------------------------------------------------------------------
    def add_audit(self, entry: AuditEntry) -> None:
        marks = self.dialect.placeholders(6)
        self._write(
            f"INSERT INTO redrive_audit ({AUDIT_COLUMNS}) VALUES ({marks})",
            (
                entry.id,
                self.dialect.encode_time(entry.at),
                entry.actor,
                entry.action,
                entry.count,
                self.dialect.encode_json(dict(entry.detail)),
            ),
        )

    def list_audit(self, *, limit: int, cursor: str | None = None) -> list[AuditEntry]:
        p = self.dialect.param
        sql, params = f"SELECT {AUDIT_COLUMNS} FROM redrive_audit", []
        if cursor is not None:
            sql += f" WHERE id < {p}"
            params.append(cursor)
        rows = self._rows(f"{sql} ORDER BY id DESC LIMIT {p}", (*params, limit))
        return [audit_from_row(row, self.dialect) for row in rows]

    # -- small shared state ---------------------------------------------------------------
    def meta_get(self, namespace: str, key: str) -> tuple[JSON, int] | None:
        p = self.dialect.param
        sql = f"SELECT value, version FROM redrive_meta WHERE namespace = {p} AND key = {p}"
        rows = self._rows(sql, (namespace, key))
        return (self.dialect.decode_json(rows[0][0]), int(rows[0][1])) if rows else None

    def meta_list(self, namespace: str) -> dict[str, JSON]:
        p = self.dialect.param
        sql = f"SELECT key, value FROM redrive_meta WHERE namespace = {p} ORDER BY key"
        rows = self._rows(sql, (namespace,))
        return {key: self.dialect.decode_json(value) for key, value in rows}

    def meta_delete(self, namespace: str, key: str) -> bool:
        p = self.dialect.param
        sql = f"DELETE FROM redrive_meta WHERE namespace = {p} AND key = {p}"
        return self._write(sql, (namespace, key)) > 0
