"""The outbox on PostgreSQL: ``redrive_outbox`` in the store's schema (migration 0002).

Dispatchers lock a batch with ``FOR UPDATE SKIP LOCKED`` in a transaction that stays open
while they deliver it (``lock``, ``PgBatch`` below); batches slower than the
outbox's ``hold``, and outboxes with ``hold=0``, fall back to a lease (``claim``,
``locked_until``), so a dispatcher that dies leaves its rows to be claimed again.
Inserts NOTIFY ``redrive_outbox_<schema>`` at commit, which wakes idle dispatchers.

A locked batch is selected with ``FOR UPDATE SKIP LOCKED`` in a transaction on a pooled
connection the dispatcher keeps, delivered while the transaction stays open, and its outcomes
are written in the same transaction. Each row is written once (its outcome), and a dispatcher
that dies mid-batch loses its connection, so PostgreSQL rolls the transaction back and the
rows are free at once. A batch that takes longer than the outbox's ``hold`` is converted: its
unfinished rows get a lease (``locked_by``, ``locked_until``) and the transaction commits, so
no transaction stays open much longer than ``hold``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg import sql

from redrive.exceptions import StoreError, StoreUnavailable
from redrive.models import JSON, parse_time
from redrive.outbox.model import COLUMNS, INSERT_COLUMNS, DeadQuery, OutboxEvent, Outcome
from redrive.stores.postgres import PostgresStore
from redrive.stores.postgres.connector import Connector, NotifyThread, describe
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
        self._listener = NotifyThread(store.connector, f"redrive_outbox_{store.schema}"[:63])

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
        rows = self.store.connector.run(lambda conn, _: conn.execute(query, params).fetchall())
        return sorted((row_to_event(row) for row in rows), key=lambda e: e.id)

    def lock(
        self, *, now: datetime, limit: int, by_key: bool, stuck_after: timedelta
    ) -> PgBatch | None:
        """Lock up to ``limit`` due rows in a transaction left open; None if none are due."""
        query = lock_sql(_READY, _FIRST_OF_KEY if by_key else "")

        idle_ms = str(max(1000, int(stuck_after.total_seconds() * 1000)))

        def select(_: int, remaining: float) -> PgBatch | None:
            conn = self.store.connector.borrow(remaining)
            try:
                rows = conn.execute(query, (idle_ms, now, now, limit)).fetchall()
            except BaseException:
                conn.close()  # broken or failed: the pool replaces it
                self.store.connector.give_back(conn)
                raise
            if not rows:
                conn.rollback()
                self.store.connector.give_back(conn)
                return None
            return PgBatch(self.store.connector, conn, [row_to_event(row) for row in rows])

        result: PgBatch | None = self.store.connector.retrying(select)
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

        self.store.connector.run(work)

    def next_due_at(self) -> datetime | None:
        query = (
            "SELECT min(greatest(next_attempt_at, coalesce(locked_until, next_attempt_at))) "
            "FROM redrive_outbox WHERE status = 'pending'"
        )
        row = self.store.connector.run_statement(lambda conn, _: conn.execute(query).fetchone())
        return parse_time(row[0]) if row else None

    def listen(self, callback: Callable[[], None]) -> Callable[[], None]:
        return self._listener.add(callback)

    def close(self) -> None:
        self._listener.stop()

    # -- the repository ------------------------------------------------------------------
    def get(self, outbox_id: int) -> OutboxEvent | None:
        query = f"SELECT {_COLS} FROM redrive_outbox WHERE id = %s"
        row = self.store.connector.run(lambda conn, _: conn.execute(query, (outbox_id,)).fetchone())
        return None if row is None else row_to_event(row)

    def fetch_dead(self, query: DeadQuery, *, limit: int, cursor: int | None) -> list[OutboxEvent]:
        clause, params = _dead_where(query)
        if cursor is not None:
            clause += " AND id < %s"
            params.append(cursor)
        text = f"SELECT {_COLS} FROM redrive_outbox WHERE {clause} ORDER BY id DESC LIMIT %s"
        rows = self.store.connector.run(
            lambda conn, _: conn.execute(text, (*params, limit)).fetchall()
        )
        return [row_to_event(row) for row in rows]

    def count_dead(self, query: DeadQuery) -> int:
        clause, params = _dead_where(query)
        text = f"SELECT count(*) FROM redrive_outbox WHERE {clause}"
        row = self.store.connector.run(lambda conn, _: conn.execute(text, params).fetchone())
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

        return int(self.store.connector.run(work))

    def cleanup_dead(self, before: datetime) -> int:
        text = "DELETE FROM redrive_outbox WHERE status = 'dead' AND dead_at < %s"
        return int(self.store.connector.run(lambda conn, _: conn.execute(text, (before,)).rowcount))

    def archive_done(self, before: datetime, *, batch: int) -> int:
        """Move one batch of done rows older than ``before`` to the archive."""
        text = (
            "WITH moved AS (DELETE FROM redrive_outbox WHERE id IN (SELECT id FROM "
            "redrive_outbox WHERE status = 'done' AND processed_at < %s ORDER BY id LIMIT %s "
            "FOR UPDATE SKIP LOCKED) RETURNING *) INSERT INTO redrive_outbox_archive "
            "SELECT moved.*, now() FROM moved"
        )
        params = (before, batch)
        return int(self.store.connector.run(lambda conn, _: conn.execute(text, params).rowcount))


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


# -- locked batches: the row locks, not a lease, protect a batch ---------------------------
DONE = (
    "UPDATE redrive_outbox SET status = 'done', processed_at = %s, attempts = attempts + 1, "
    "locked_by = NULL, locked_until = NULL WHERE id = ANY(%s)"
)
LEASE = "UPDATE redrive_outbox SET locked_by = %s, locked_until = %s WHERE id = ANY(%s)"


def lock_sql(ready: str, first_of_key: str) -> str:
    """Select (and lock) due rows that no other transaction holds, in id order.

    The first parameter ends the transaction if it stays idle longer (ms, this transaction
    only): a dispatcher whose event loop is stuck holds its rows no longer than a lease.
    Set in the same statement, it costs no round trip.
    """
    return (
        "WITH t AS MATERIALIZED (SELECT set_config('idle_in_transaction_session_timeout', "
        f"%s, true)) SELECT {', '.join(f'o.{c}' for c in COLUMNS)} FROM redrive_outbox AS o, "
        f"t WHERE {ready}{first_of_key} ORDER BY o.id LIMIT %s FOR UPDATE OF o SKIP LOCKED"
    )


class PgBatch:
    """Rows locked by one open transaction; :meth:`commit` or :meth:`release` ends it."""

    def __init__(self, connector: Connector, conn: Conn, rows: list[OutboxEvent]) -> None:
        self.rows = rows
        self._connector = connector  # ``conn`` is borrowed from its pool
        self._conn: Conn | None = conn

    def commit(
        self,
        outcomes: Sequence[Outcome],
        *,
        now: datetime,
        leased: Sequence[int] = (),
        lease_until: datetime | None = None,
        owner: str = "",
    ) -> None:
        """Write ``outcomes``, put the rows in ``leased`` under a lease, and commit.

        If the connection broke, nothing is written: the server has released the rows
        and they are delivered again (at least once).
        """
        conn = self._end()
        done = [o.id for o in outcomes if o.error is None]
        statements: list[tuple[str, Sequence[Any]]] = []
        if done:
            statements.append((DONE, (now, done)))
        for status, dead in (("pending", False), ("dead", True)):
            failed = [o for o in outcomes if o.error is not None and o.dead is dead]
            if failed:
                statements.append((failed_sql(status, owned=False), failed_params(failed, now)))
        if leased:
            statements.append((LEASE, (owner, lease_until, list(leased))))
        try:
            if len(statements) > 1:
                with conn.pipeline():  # one round trip for every kind of outcome
                    for query, params in statements:
                        conn.execute(query, params)
            elif statements:
                conn.execute(*statements[0])
            conn.commit()
        except psycopg.Error as exc:
            conn.close()  # the pool replaces it
            lost = f"{self._connector.url}: outbox batch lost: {describe(exc)}"
            raise StoreUnavailable(lost) from exc
        finally:
            self._connector.give_back(conn)

    def release(self) -> None:
        """Write nothing: roll back, so the rows are free for any dispatcher at once."""
        conn = self._end()
        with contextlib.suppress(psycopg.Error):
            conn.rollback()
        self._connector.give_back(conn)

    def _end(self) -> Conn:
        conn, self._conn = self._conn, None
        if conn is None:
            raise StoreError("this outbox batch is already committed or released")
        return conn
