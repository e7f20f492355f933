"""The outbox on PostgreSQL: ``redrive_outbox`` in the store's schema (migration 0002).

Dispatchers lock a batch with ``FOR UPDATE SKIP LOCKED`` in a transaction that stays open
while they deliver it (``lock``, see ``pg_batch``); batches slower than the
outbox's ``hold``, and outboxes with ``hold=0``, fall back to a lease (``claim``,
``locked_until``), so a dispatcher that dies leaves its rows to be claimed again.
Inserts NOTIFY ``redrive_outbox_<schema>`` at commit, which wakes idle dispatchers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg import sql

from redrive.models import JSON, parse_time
from redrive.outbox.model import COLUMNS, INSERT_COLUMNS, DeadQuery, OutboxEvent, Outcome
from redrive.outbox.pg_batch import PgBatch, lock_sql
from redrive.stores.postgres import PostgresStore
from redrive.stores.postgres.connector import Listener
from redrive.stores.postgres.queries import PgDialect, dumps

Conn = psycopg.Connection[tuple[Any, ...]]
_COLS = ", ".join(COLUMNS)
_READY = (
    "status = 'pending' AND next_attempt_at <= %s AND (locked_until IS NULL OR locked_until <= %s)"
)
# Per-key ordering: a row waits while an earlier row of its key is still pending.
_FIRST_OF_KEY = (
    " AND (o.key IS NULL OR NOT EXISTS (SELECT 1 FROM redrive_outbox AS e "
    "WHERE e.key = o.key AND e.status = 'pending' AND e.id < o.id))"
)


def row_to_event(row: Sequence[Any]) -> OutboxEvent:
    """An ``OutboxEvent`` from a row selected with ``COLUMNS``."""
    data = dict(zip(COLUMNS, row, strict=True))
    for name in ("next_attempt_at", "last_error_at", "created_at", "processed_at", "dead_at"):
        data[name] = parse_time(data[name])
    return OutboxEvent(**data)


class PgOutbox:
    """Outbox SQL for a ``PostgresStore`` (its pool, retries and schema)."""

    kind = "postgresql"
    locks_rows = True

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.table = sql.Identifier(store.schema, "redrive_outbox")
        self._listener = Listener(store._db, f"redrive_outbox_{store.schema}"[:63])

    # -- the application's inserts -------------------------------------------------------
    def insert_sql(self, style: Literal["format", "qmark", "named"]) -> str:
        """The INSERT for an application's own connection (schema-qualified)."""
        if style == "named":
            marks = [
                f"CAST(:{c} AS jsonb)" if c in ("payload", "headers") else f":{c}"
                for c in INSERT_COLUMNS
            ]
        else:
            marks = ["%s"] * len(INSERT_COLUMNS)
        query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            self.table, sql.SQL(", ".join(INSERT_COLUMNS)), sql.SQL(", ".join(marks))
        )
        return query.as_string(None)

    def encode_json(self, value: JSON, *, driver: bool) -> Any:
        return PgDialect().encode_json(value) if driver else dumps(value)

    def encode_time(self, value: datetime) -> Any:
        return value

    # -- dispatching ---------------------------------------------------------------------
    def claim(
        self, *, now: datetime, lease_until: datetime, owner: str, limit: int, by_key: bool
    ) -> list[OutboxEvent]:
        query = (
            f"WITH c AS MATERIALIZED (SELECT id FROM redrive_outbox AS o WHERE {_READY}"
            f"{_FIRST_OF_KEY if by_key else ''} ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
            "UPDATE redrive_outbox AS o SET locked_by = %s, locked_until = %s FROM c "
            f"WHERE o.id = c.id RETURNING {', '.join(f'o.{c}' for c in COLUMNS)}"
        )
        params = (now, now, limit, owner, lease_until)
        rows = self.store.run(lambda conn, _: conn.execute(query, params).fetchall())
        return sorted((row_to_event(row) for row in rows), key=lambda e: e.id)

    def lock(
        self, *, now: datetime, limit: int, by_key: bool, stuck_after: timedelta
    ) -> PgBatch | None:
        """Lock up to ``limit`` due rows in a transaction left open; None if none are due."""
        query = lock_sql(_READY, _FIRST_OF_KEY if by_key else "")

        idle_ms = str(max(1000, int(stuck_after.total_seconds() * 1000)))

        def select(_: int, remaining: float) -> PgBatch | None:
            conn = self.store._db.borrow(remaining)
            try:
                rows = conn.execute(query, (idle_ms, now, now, limit)).fetchall()
            except BaseException:
                conn.close()  # broken or failed: the pool replaces it
                self.store._db.give_back(conn)
                raise
            if not rows:
                conn.rollback()
                self.store._db.give_back(conn)
                return None
            return PgBatch(self.store._db, conn, [row_to_event(row) for row in rows])

        result: PgBatch | None = self.store._db.retrying(select)
        return result

    def finish(self, outcomes: Sequence[Outcome], *, now: datetime, owner: str) -> None:
        done = [o.id for o in outcomes if o.error is None]
        retry = [o for o in outcomes if o.error is not None and not o.dead]
        dead = [o for o in outcomes if o.dead]

        def work(conn: Conn, _: int) -> None:
            if done:
                conn.execute(
                    "UPDATE redrive_outbox SET status = 'done', processed_at = %s, "
                    "attempts = attempts + 1, locked_by = NULL, locked_until = NULL "
                    "WHERE id = ANY(%s) AND locked_by = %s",
                    (now, done, owner),
                )
            for batch, status in ((retry, "pending"), (dead, "dead")):
                if batch:
                    conn.execute(failed_sql(status), failed_params(batch, now, owner))

        self.store.run(work)

    def next_due_at(self) -> datetime | None:
        query = (
            "SELECT min(greatest(next_attempt_at, coalesce(locked_until, next_attempt_at))) "
            "FROM redrive_outbox WHERE status = 'pending'"
        )
        row = self.store.run(lambda conn, _: conn.execute(query).fetchone())
        return parse_time(row[0]) if row else None

    def listen(self, callback: Callable[[], None]) -> Callable[[], None]:
        return self._listener.add(callback)

    def close(self) -> None:
        self._listener.stop()

    # -- the repository ------------------------------------------------------------------
    def get(self, outbox_id: int) -> OutboxEvent | None:
        query = f"SELECT {_COLS} FROM redrive_outbox WHERE id = %s"
        row = self.store.run(lambda conn, _: conn.execute(query, (outbox_id,)).fetchone())
        return None if row is None else row_to_event(row)

    def fetch_dead(self, query: DeadQuery, *, limit: int, cursor: int | None) -> list[OutboxEvent]:
        clause, params = _dead_where(query)
        if cursor is not None:
            clause += " AND id < %s"
            params.append(cursor)
        text = f"SELECT {_COLS} FROM redrive_outbox WHERE {clause} ORDER BY id DESC LIMIT %s"
        rows = self.store.run(lambda conn, _: conn.execute(text, (*params, limit)).fetchall())
        return [row_to_event(row) for row in rows]

    def count_dead(self, query: DeadQuery) -> int:
        clause, params = _dead_where(query)
        text = f"SELECT count(*) FROM redrive_outbox WHERE {clause}"
        row = self.store.run(lambda conn, _: conn.execute(text, params).fetchone())
        return int(row[0]) if row else 0

    def retry_dead(self, ids: Sequence[int], *, now: datetime) -> int:
        text = (
            "UPDATE redrive_outbox SET status = 'pending', attempts = 0, next_attempt_at = %s, "
            "dead_at = NULL WHERE id = ANY(%s) AND status = 'dead'"
        )
        notify = sql.SQL("NOTIFY {}").format(sql.Identifier(self._listener.channel))

        def work(conn: Conn, _: int) -> int:
            changed = conn.execute(text, (now, list(ids))).rowcount
            if changed:
                conn.execute(notify)
            return changed

        return int(self.store.run(work))

    def cleanup_dead(self, before: datetime) -> int:
        text = "DELETE FROM redrive_outbox WHERE status = 'dead' AND dead_at < %s"
        return int(self.store.run(lambda conn, _: conn.execute(text, (before,)).rowcount))

    def archive_done(self, before: datetime, *, batch: int) -> int:
        """Move one batch of done rows older than ``before`` to the archive."""
        text = (
            "WITH moved AS (DELETE FROM redrive_outbox WHERE id IN (SELECT id FROM "
            "redrive_outbox WHERE status = 'done' AND processed_at < %s ORDER BY id LIMIT %s "
            "FOR UPDATE SKIP LOCKED) RETURNING *) INSERT INTO redrive_outbox_archive "
            "SELECT moved.*, now() FROM moved"
        )
        params = (before, batch)
        return int(self.store.run(lambda conn, _: conn.execute(text, params).rowcount))


def failed_sql(status: str, *, owned: bool = True) -> str:
    """Record failed deliveries (``pending`` to retry, or ``dead``); ``owned``: only rows
    still under this dispatcher's lease (the last parameter)."""
    dead_at = ", dead_at = v.at" if status == "dead" else ""
    mine = " AND o.locked_by = %s" if owned else ""
    return (
        f"UPDATE redrive_outbox AS o SET status = '{status}', attempts = v.attempts, "
        "next_attempt_at = coalesce(v.retry_at, o.next_attempt_at), last_error = v.error, "
        f"last_error_at = v.at, locked_by = NULL, locked_until = NULL{dead_at} "
        "FROM (SELECT unnest(%s::bigint[]) AS id, unnest(%s::int[]) AS attempts, "
        "unnest(%s::timestamptz[]) AS retry_at, unnest(%s::text[]) AS error, "
        f"%s::timestamptz AS at) AS v WHERE o.id = v.id{mine}"
    )


def failed_params(
    batch: Sequence[Outcome], now: datetime, owner: str | None = None
) -> tuple[Any, ...]:
    """The parameters of :func:`failed_sql` (``owner`` when ``owned``)."""
    params = (
        [o.id for o in batch],
        [o.attempts for o in batch],
        [o.retry_at for o in batch],
        [(o.error or "").replace("\x00", "\ufffd") for o in batch],
        now,
    )
    return params if owner is None else (*params, owner)


def _dead_where(query: DeadQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = ["status = 'dead'"]
    params: list[Any] = []
    for column, value in (("aggregate_type", query.aggregate_type), ("topic", query.event_type)):
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    if query.since is not None:
        clauses.append("dead_at >= %s")
        params.append(query.since)
    return " AND ".join(clauses), params
