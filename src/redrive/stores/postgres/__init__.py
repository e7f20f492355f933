"""PostgresStore: one database shared by every app process, worker and operator surface.

psycopg 3 with a connection pool; the schema lives in a schema the user names (default
``redrive``) and is brought up to date by versioned migrations. Counts by topic and
status are kept by triggers, claims use ``FOR UPDATE SKIP LOCKED`` under a lease, and a
trigger's NOTIFY wakes every process's scheduler as soon as a record is scheduled.

URL query parameters (so the CLI and ``REDRIVE_STORE_URL`` can set them too):
``schema``, ``retry_timeout`` (seconds), ``pool_size``.

.. versionadded:: 0.1
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg

from redrive._batch import chunks
from redrive.exceptions import ConfigError
from redrive.models import JSON, DeadLetter, Status
from redrive.stores.base import Change, Filter, Group, Stats
from redrive.stores.postgres import queries as q
from redrive.stores.postgres.connector import Connector, NotifyThread
from redrive.stores.postgres.schema import migrate as apply_migrations
from redrive.stores.sql import (
    TABLE,
    SQLStore,
    build_where,
    group_from_row,
    row_to_record,
)
from redrive.stores.url import mask_url, split_url

Conn = psycopg.Connection[tuple[Any, ...]]


_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_ $-]{0,53}$")


class PostgresStore(SQLStore):
    """A store in a PostgreSQL database.

    :param url: ``postgresql://user:password@host:5432/db`` (the password is never shown).
    :param schema: the schema that holds redrive's tables (created if missing).
    :param migrate: apply pending migrations on open (``redrive migrate`` does it otherwise).
    :param retry_timeout: how long a lost connection is retried before ``StoreUnavailable``.
    :param pool_size: the most connections this process opens.

    .. versionadded:: 0.1
    """

    dialect = q.PgDialect()
    kind = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        migrate: bool = True,
        retry_timeout: float | None = None,
        pool_size: int | None = None,
    ) -> None:
        conninfo, options = split_url(url)
        self.url = mask_url(url)
        self.schema = schema or options.get("schema") or "redrive"
        timeout = retry_timeout if retry_timeout is not None else _number(options, "retry_timeout")
        size = pool_size if pool_size is not None else int(_number(options, "pool_size") or 10)
        if not _SCHEMA_NAME.match(self.schema):  # channel names derive from it: ASCII, short
            raise ConfigError(
                "expected a schema name of ASCII letters, digits, _, $, - and spaces "
                f"(at most 54), got {self.schema!r}",
                key="schema",
            )
        self.channel = f"redrive_{self.schema}"[:63]
        self.connector = Connector(
            conninfo,
            url=self.url,
            schema=self.schema,
            max_size=max(1, size),
            retry_timeout=timeout if timeout is not None else 30.0,
        )
        self._notify = NotifyThread(self.connector, self.channel)
        if migrate:
            self.migrate()

    # -- lifecycle ---------------------------------------------------------------------
    def migrate(self) -> int:
        """Apply pending migrations. A server that is down (or starting) is waited for,
        for ``retry_timeout``, as a running store waits: a process started during an
        outage comes up when the database does."""

        def once(_attempt: int, _remaining: float) -> int:
            with self.connector.connect_raw(autocommit=True) as conn:
                return apply_migrations(conn, self.schema)

        return self.connector.retrying(once)

    def close(self) -> None:
        self._notify.stop()
        self.connector.close()

    def listen(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` (from a thread) whenever any process schedules records."""
        return self._notify.add(callback)

    # -- the primitives of SQLStore ----------------------------------------------------
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.connector.run_statement(lambda conn, _: conn.execute(sql, params).fetchall())

    def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        return int(self.connector.run_statement(lambda conn, _: conn.execute(sql, params).rowcount))

    def _write_rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._rows(sql, params)

    def _where(self, where: Filter) -> tuple[str, list[Any]]:
        return build_where(where, self.dialect, payload_text=lambda col: f"({col}::text)")

    # -- the engine's writes -----------------------------------------------------------
    def add(self, records: Sequence[DeadLetter]) -> list[str]:
        if not records:
            return []
        rows = [q.row_of(record, self.dialect) for record in records]
        batches = [
            [rows[i] for i in part]
            for indexes in q.rounds(records)
            for part in chunks(indexes, q.BATCH)
        ]

        def work(conn: Conn, _: int) -> dict[tuple[str, str], str]:
            stored: dict[tuple[str, str], str] = {}
            for batch in batches:
                cursor = conn.execute(q.insert(), q.columns(batch))
                stored.update(((e, h), i) for e, h, i in cursor.fetchall())
            return stored

        # One multi-row INSERT is atomic on its own: no BEGIN/COMMIT round trips.
        run = self.connector.run_statement if len(batches) == 1 else self.connector.run
        stored = run(work)
        return [stored.get((r.event.id, r.handler), r.id) for r in records]

    def save(self, record: DeadLetter, *, lease_owner: str) -> bool:
        return self.save_many([(record, lease_owner)])[0]

    def save_many(self, outcomes: Sequence[tuple[DeadLetter, str]]) -> list[bool]:
        if not outcomes:
            return []
        rows = [(q.row_of(record, self.dialect), record, owner) for record, owner in outcomes]
        # The common case in one statement; one record twice in a batch (its outcomes must
        # apply in order) or a batch too big for one statement goes row by row.
        at_once = len(rows) <= q.BATCH and len({r.id for r, _ in outcomes}) == len(rows)

        def work(conn: Conn, attempt: int) -> list[bool]:
            if at_once:
                params = q.columns([(*row, owner) for row, _, owner in rows])
                ids = {r[0] for r in conn.execute(q.SAVE_OUTCOMES, params)}
                written = [record.id in ids for _, record, _ in rows]
            else:
                written = [
                    conn.execute(q.UPDATE_ALL, (*row[1:], record.id, owner)).rowcount == 1
                    for row, record, owner in rows
                ]
            if attempt > 0:  # a retry after a commit whose answer was lost finds its own
                written = [
                    done or conn.execute(q.SAVED, q.saved_params(record)).fetchone() is not None
                    for done, (_, record, _) in zip(written, rows, strict=True)
                ]
            return written

        run = self.connector.run_statement if at_once else self.connector.run
        result: list[bool] = run(work)
        return result

    def claim_due(
        self,
        *,
        now: datetime,
        lease_until: datetime,
        owner: str,
        limit: int,
        handlers: Collection[tuple[str, str]] | None = None,
        exclude: Collection[str] = (),
    ) -> list[DeadLetter]:
        if limit <= 0 or (handlers is not None and not handlers):
            return []
        only, params = q.handler_clause(handlers)
        if exclude:
            only += " AND id <> ALL(%s)"
            params.append(list(exclude))

        # One statement, so no BEGIN and COMMIT: both kinds of due rows in one round trip.
        sql = q.claim(only)
        values = (now, *params, limit, now, *params, limit, owner, lease_until, now)
        rows = self.connector.run_statement(lambda conn, _: conn.execute(sql, values).fetchall())
        records = [row_to_record(row, self.dialect) for row in rows]
        return sorted(records, key=lambda r: (r.next_attempt_at or now, r.id))

    def extend_leases(self, ids: Sequence[str], *, owner: str, until: datetime) -> int:
        """As the protocol says; the lease runs from when the rows' locks are had."""
        if not ids:
            return 0
        return self._write(q.EXTEND_LEASES, (list(ids), owner, until))

    def next_due_at(self, handlers: Collection[tuple[str, str]] | None = None) -> datetime | None:
        if handlers is not None and not handlers:
            return None
        only, params = q.handler_clause(handlers)
        sql = (
            f"SELECT least((SELECT min(next_attempt_at) FROM {TABLE} "
            f"WHERE status = 'scheduled'{only}), (SELECT min(lease_expires_at) FROM {TABLE} "
            f"WHERE status = 'retrying'{only}))"
        )
        row = self.connector.run_statement(
            lambda conn, _: conn.execute(sql, (*params, *params)).fetchone()
        )
        return self.dialect.decode_time(row[0]) if row else None

    def dead_timeline(
        self, since: datetime, *, topic: str | None = None
    ) -> list[tuple[datetime, str, int]]:
        """(minute, topic, records that became dead) since ``since``, oldest first."""
        sql = (
            "SELECT minute, topic, n FROM redrive_dead_timeline "
            "WHERE minute >= date_trunc('minute', %s::timestamptz)"
        )
        params: list[Any] = [since]
        if topic is not None:
            sql += " AND topic = %s"
            params.append(topic)
        sql += " ORDER BY minute, topic"
        rows = self.connector.run(lambda conn, _: conn.execute(sql, params).fetchall())
        return [(self.dialect.decode_required_time(m), t, int(n)) for m, t, n in rows]

    # -- reads -------------------------------------------------------------------------
    def stats(self, now: datetime) -> Stats:
        hour, day = now - timedelta(hours=1), now - timedelta(days=1)

        def work(conn: Conn, _: int) -> tuple[list[Any], list[Any], list[Any]]:
            return (
                conn.execute(q.STATS_COUNTS).fetchall(),
                conn.execute(q.STATS_OLDEST).fetchall(),
                conn.execute(q.STATS_NEW_DEAD, (hour, day)).fetchall(),
            )

        count_rows, oldest_rows, new_rows = self.connector.run(work)
        counts: dict[str, dict[Status, int]] = {}
        for topic, status, n in count_rows:
            counts.setdefault(topic, {})[Status(status)] = int(n)
        decode = self.dialect.decode_required_time
        return Stats(
            counts=counts,
            oldest_dead_at={t: decode(w) for t, w in oldest_rows if w is not None},
            new_dead_last_hour={t: int(h) for t, h, _, _, _ in new_rows if h},
            new_dead_last_day={t: int(d) for t, _, d, _, _ in new_rows if d},
            redead_last_hour={t: int(h) for t, _, _, h, _ in new_rows if h},
            redead_last_day={t: int(d) for t, _, _, _, d in new_rows if d},
        )

    def prune_timeline(self, before: datetime) -> int:
        sql = (
            "DELETE FROM redrive_dead_timeline WHERE minute < date_trunc('minute', %s::timestamptz)"
        )
        return int(self.connector.run(lambda conn, _: conn.execute(sql, (before,)).rowcount))

    def groups(self, where: Filter, *, limit: int) -> list[Group]:
        clause, params = self._where(where)
        sql = q.groups(clause)
        rows = self.connector.run_statement(
            lambda conn, _: conn.execute(sql, (*params, limit)).fetchall()
        )
        return [group_from_row(row, self.dialect) for row in rows]

    # -- operator changes --------------------------------------------------------------
    def _transition(self, ids: Sequence[str], change: Change) -> list[str]:
        sql, params = q.transition(list(ids), change, self.dialect)
        rows = self.connector.run_statement(lambda conn, _: conn.execute(sql, params).fetchall())
        return [row[0] for row in rows]

    def _insert_ignore(self, records: list[DeadLetter]) -> int:
        rows = [q.row_of(record, self.dialect) for record in records]
        sql = q.insert(ignore=True) + " RETURNING topic, status, dead_at, replays"
        # An imported dead letter did not die now: take it out of the timeline again.
        undo = (
            "UPDATE redrive_dead_timeline AS t SET n = t.n - v.n, redead = t.redead - v.r "
            "FROM (SELECT unnest(%s::text[]) AS topic, unnest(%s::timestamptz[]) AS minute, "
            "unnest(%s::bigint[]) AS n, unnest(%s::bigint[]) AS r) AS v "
            "WHERE t.topic = v.topic AND t.minute = v.minute"
        )

        def work(conn: Any, _: int) -> int:
            added = conn.execute(sql, q.columns(rows)).fetchall()
            first: Counter[tuple[str, datetime]] = Counter()
            again: Counter[tuple[str, datetime]] = Counter()
            for topic, status, dead_at, replays in added:
                if status == "dead" and dead_at is not None:
                    key = (topic, dead_at.replace(second=0, microsecond=0))
                    (again if replays else first)[key] += 1
            keys = list(first.keys() | again.keys())
            if keys:
                conn.execute(
                    undo,
                    (
                        [k[0] for k in keys],
                        [k[1] for k in keys],
                        [first[k] for k in keys],
                        [again[k] for k in keys],
                    ),
                )
            return len(added)

        return int(self.connector.run(work))

    # -- audit trail -------------------------------------------------------------------
    # -- meta ----------------------------------------------------------------------------
    def meta_put(
        self, namespace: str, key: str, value: JSON, *, version: int | None = None
    ) -> bool:
        sql, params = q.meta_put(namespace, key, self.dialect.encode_json(value), version)
        return bool(self.connector.run(lambda conn, _: conn.execute(sql, params).rowcount == 1))


def _number(options: dict[str, str], name: str, default: float | None = None) -> float | None:
    if name not in options:
        return default
    try:
        value = float(options[name])
    except ValueError:
        raise ConfigError(f"expected a number, got {options[name]!r}", key=name) from None
    if value <= 0:
        raise ConfigError(f"expected a positive number, got {options[name]!r}", key=name)
    return value
