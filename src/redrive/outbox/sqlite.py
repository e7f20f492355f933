"""The outbox on SQLite, for the embedded case: ``redrive_outbox`` in the store's file.

SQLite has one writer at a time, so a claim (``BEGIN IMMEDIATE``) never races another;
the lease (``locked_until``) still lets a dispatcher that died hand its rows back.
Times are ISO-8601 UTC text (they sort as times), JSON is text.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from redrive.exceptions import ConfigError
from redrive.models import JSON, format_time, parse_time, utcnow
from redrive.outbox.model import (
    COLUMNS,
    INSERT_COLUMNS,
    Batch,
    DeadQuery,
    OutboxEvent,
    Outcome,
)
from redrive.stores.sql import Dialect
from redrive.stores.sqlite import SQLiteStore

_COLS = ", ".join(COLUMNS)
_DIALECT = Dialect()


def _row_to_event(row: Sequence[Any]) -> OutboxEvent:
    data = dict(zip(COLUMNS, row, strict=True))
    data["payload"] = _DIALECT.decode_json(data["payload"])
    data["headers"] = _DIALECT.decode_json(data["headers"])
    for name in ("next_attempt_at", "last_error_at", "created_at", "processed_at", "dead_at"):
        data[name] = parse_time(data[name])
    return OutboxEvent(**data)


class SqliteOutbox:
    """Outbox SQL on the SQLite file ``path`` (the store's file)."""

    kind = "sqlite"
    locks_rows = False  # one writer at a time: a batch held open would block the app

    def __init__(self, store: SQLiteStore) -> None:
        if store.path == ":memory:":
            raise ConfigError("the outbox needs a database file, not :memory:", key="store_url")
        self.path = store.path
        self._db = store.connections  # the store's connections; migration 0003 made the tables

    def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self._db.write()

    def _read(self, query: str, params: Sequence[Any]) -> list[Any]:
        with self._db.read() as conn:
            return conn.execute(query, params).fetchall()

    # -- the application's inserts -------------------------------------------------------
    def insert_sql(self, style: Literal["format", "qmark", "named"]) -> str:
        named = [f":{c}" for c in INSERT_COLUMNS]
        marks = named if style == "named" else ["?"] * len(INSERT_COLUMNS)
        columns = ", ".join(INSERT_COLUMNS)
        return f"INSERT INTO redrive_outbox ({columns}) VALUES ({', '.join(marks)})"

    def encode_json(self, value: JSON, *, driver: bool) -> Any:
        return _DIALECT.encode_json(value)

    def encode_time(self, value: datetime) -> Any:
        return format_time(value)

    # -- dispatching ---------------------------------------------------------------------
    def claim(
        self, *, now: datetime, lease_until: datetime, owner: str, limit: int, by_key: bool
    ) -> list[OutboxEvent]:
        t = format_time(now)
        first_of_key = (
            " AND (o.key IS NULL OR NOT EXISTS (SELECT 1 FROM redrive_outbox AS e "
            "WHERE e.key = o.key AND e.status = 'pending' AND e.id < o.id))"
        )
        query = (
            "UPDATE redrive_outbox SET locked_by = ?, locked_until = ? WHERE id IN (SELECT id "
            "FROM redrive_outbox AS o WHERE status = 'pending' AND next_attempt_at <= ? "
            f"AND (locked_until IS NULL OR locked_until <= ?){first_of_key if by_key else ''} "
            f"ORDER BY id LIMIT ?) RETURNING {_COLS}"
        )
        with self._write() as conn:
            rows = conn.execute(query, (owner, format_time(lease_until), t, t, limit)).fetchall()
        return sorted((_row_to_event(row) for row in rows), key=lambda e: e.id)

    def lock(
        self, *, now: datetime, limit: int, by_key: bool, stuck_after: timedelta
    ) -> Batch | None:
        """SQLite never keeps a batch locked (``locks_rows`` is False): use :meth:`claim`."""
        return None

    def finish(self, outcomes: Sequence[Outcome], *, now: datetime, owner: str) -> None:
        t = format_time(now)
        done = [(t, o.id, owner) for o in outcomes if o.error is None]
        failed = [
            (
                "dead" if o.dead else "pending",
                o.attempts,
                format_time(o.retry_at),
                o.error,
                t,
                t if o.dead else None,
                o.id,
                owner,
            )
            for o in outcomes
            if o.error is not None
        ]
        with self._write() as conn:
            conn.executemany(
                "UPDATE redrive_outbox SET status = 'done', processed_at = ?, "
                "attempts = attempts + 1, locked_by = NULL, locked_until = NULL "
                "WHERE id = ? AND locked_by = ?",
                done,
            )
            conn.executemany(
                "UPDATE redrive_outbox SET status = ?, attempts = ?, "
                "next_attempt_at = coalesce(?, next_attempt_at), last_error = ?, "
                "last_error_at = ?, dead_at = ?, locked_by = NULL, locked_until = NULL "
                "WHERE id = ? AND locked_by = ?",
                failed,
            )

    def next_due_at(self) -> datetime | None:
        rows = self._read(
            "SELECT min(max(next_attempt_at, coalesce(locked_until, next_attempt_at))) "
            "FROM redrive_outbox WHERE status = 'pending'",
            (),
        )
        return parse_time(rows[0][0]) if rows and rows[0][0] else None

    def listen(self, callback: Callable[[], None]) -> Callable[[], None]:
        return lambda: None  # SQLite cannot notify: dispatchers poll

    def close(self) -> None:
        """Nothing to release: the connections are the store's, and it closes them."""

    # -- the repository ------------------------------------------------------------------
    def get(self, outbox_id: int) -> OutboxEvent | None:
        rows = self._read(f"SELECT {_COLS} FROM redrive_outbox WHERE id = ?", (outbox_id,))
        return _row_to_event(rows[0]) if rows else None

    def fetch_dead(self, query: DeadQuery, *, limit: int, cursor: int | None) -> list[OutboxEvent]:
        clause, params = _dead_where(query)
        if cursor is not None:
            clause += " AND id < ?"
            params.append(cursor)
        rows = self._read(
            f"SELECT {_COLS} FROM redrive_outbox WHERE {clause} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
        return [_row_to_event(row) for row in rows]

    def count_dead(self, query: DeadQuery) -> int:
        clause, params = _dead_where(query)
        return int(self._read(f"SELECT count(*) FROM redrive_outbox WHERE {clause}", params)[0][0])

    def retry_dead(self, ids: Sequence[int], *, now: datetime) -> int:
        changed = 0
        with self._write() as conn:
            for outbox_id in ids:
                changed += conn.execute(
                    "UPDATE redrive_outbox SET status = 'pending', attempts = 0, "
                    "next_attempt_at = ?, dead_at = NULL WHERE id = ? AND status = 'dead'",
                    (format_time(now), outbox_id),
                ).rowcount
        return changed

    def cleanup_dead(self, before: datetime) -> int:
        with self._write() as conn:
            return conn.execute(
                "DELETE FROM redrive_outbox WHERE status = 'dead' AND dead_at < ?",
                (format_time(before),),
            ).rowcount

    def archive_done(self, before: datetime, *, batch: int) -> int:
        """Move one batch of done rows older than ``before`` to the archive."""
        select = (
            "SELECT id FROM redrive_outbox WHERE status = 'done' AND processed_at < ? "
            "ORDER BY id LIMIT ?"
        )
        with self._write() as conn:
            ids = [row[0] for row in conn.execute(select, (format_time(before), batch))]
            if not ids:
                return 0
            marks = ", ".join("?" * len(ids))
            conn.execute(
                f"INSERT INTO redrive_outbox_archive SELECT *, ? FROM redrive_outbox "
                f"WHERE id IN ({marks})",
                (format_time(utcnow()), *ids),
            )
            return conn.execute(f"DELETE FROM redrive_outbox WHERE id IN ({marks})", ids).rowcount


def _dead_where(query: DeadQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = ["status = 'dead'"]
    params: list[Any] = []
    for column, value in (("aggregate_type", query.aggregate_type), ("topic", query.event_type)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if query.since is not None:
        clauses.append("dead_at >= ?")
        params.append(format_time(query.since))
    return " AND ".join(clauses), params
