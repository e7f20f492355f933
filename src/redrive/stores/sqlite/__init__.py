"""SQLiteStore: the embedded default. Stdlib sqlite3, WAL, safe for several processes.

This module holds SQLite's own statements (the rest is shared: ``stores.sql.SQLStore``);
connections, transactions and migrations are in ``connections``. Counts, the dead-letter
timeline and error groups are kept by every writing method in the transaction of its rows,
one statement per table for a whole batch (``tallies``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from redrive._batch import chunks
from redrive.exceptions import StoreError
from redrive.models import JSON, DeadLetter, Status
from redrive.stores.base import Change, Filter, Group, Stats
from redrive.stores.sql import (
    COLUMN_LIST,
    COLUMNS,
    OPEN_STATUSES,
    TABLE,
    Dialect,
    SQLStore,
    build_where,
    group_from_row,
    record_to_row,
    row_to_record,
)
from redrive.stores.sqlite.connections import SQLiteConnections, migrations
from redrive.stores.sqlite.tallies import TALLY_LIST, Tallies, Tally, of_row, tallies_of

__all__ = ["SQLiteStore", "migrations"]

_INSERT = f"INSERT INTO {TABLE} ({COLUMN_LIST}) VALUES ({', '.join('?' * len(COLUMNS))})"
_INSERT_OR_IGNORE = _INSERT.replace("INSERT INTO", "INSERT OR IGNORE INTO")
_UPDATE_ALL = (
    f"UPDATE {TABLE} SET {', '.join(f'{c} = ?' for c in COLUMNS[1:])} "
    "WHERE id = ? AND status = 'retrying' AND lease_owner = ?"
)
_OPEN = "(" + ", ".join(f"'{status}'" for status in OPEN_STATUSES) + ")"


class SQLiteStore(SQLStore):
    """A store in one SQLite file.

    :param path: the database file, or ``:memory:``.
    :param busy_timeout: seconds to wait for another process's write lock.
    :param migrate: bring the schema up to date on open.

    .. versionadded:: 0.1
    """

    dialect = Dialect()
    kind = "sqlite"
    writes_together = True

    def __init__(
        self, path: str | Path, *, busy_timeout: float = 30.0, migrate: bool = True
    ) -> None:
        self.connections = SQLiteConnections(path, busy_timeout=busy_timeout)
        self.path = self.connections.path
        self.url = self.connections.url
        if migrate:
            self.migrate()

    # -- lifecycle ---------------------------------------------------------------------
    def migrate(self) -> int:
        return self.connections.migrate()

    def close(self) -> None:
        self.connections.close()

    # -- the primitives of SQLStore ----------------------------------------------------
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.connections.read() as conn:
            return conn.execute(sql, params).fetchall()

    def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self.connections.write() as conn:
            return int(conn.execute(sql, params).rowcount)

    def _write_rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.connections.write() as conn:
            return conn.execute(sql, params).fetchall()

    # -- the engine's writes -----------------------------------------------------------
    def together(self) -> AbstractContextManager[None]:
        """One transaction (one fsync) for the writes of this thread inside: the writers of
        one file take turns on its lock anyway."""
        return self.connections.together()

    def add(self, records: Sequence[DeadLetter]) -> list[str]:
        rows = [record_to_row(record, self.dialect) for record in records]
        tallies = Tallies()
        with self.connections.write() as conn:
            # The common case in one statement: every failure is the first of its pair.
            # OR IGNORE skips a row whose pair has an open record (or whose id is there);
            # the count of rows written says whether any was skipped. The savepoint lets
            # the rare case start again row by row, so the tallies know each row's fate.
            conn.execute("SAVEPOINT redrive_add")
            if conn.executemany(_INSERT_OR_IGNORE, rows).rowcount == len(rows):
                conn.execute("RELEASE redrive_add")
                for row in rows:
                    tallies.came(of_row(row))
                ids = [record.id for record in records]
            else:
                conn.execute("ROLLBACK TO redrive_add")
                conn.execute("RELEASE redrive_add")
                ids = self._add_one_by_one(conn, records, rows, tallies)
            tallies.apply(conn)
            return ids

    def _add_one_by_one(
        self,
        conn: sqlite3.Connection,
        records: Sequence[DeadLetter],
        rows: Sequence[tuple[Any, ...]],
        tallies: Tallies,
    ) -> list[str]:
        """Insert each record, or merge its failure into the open record of its pair; the
        id every record is stored under."""
        ids: list[str] = []
        for record, row in zip(records, rows, strict=True):
            if conn.execute(_INSERT_OR_IGNORE, row).rowcount == 1:
                tallies.came(of_row(row))
                ids.append(record.id)
                continue
            target = self._open_record(conn, record)
            if target is None:  # skipped, yet no open record: its id is a closed record's
                raise StoreError(f"{self.url}: a record with id {record.id} exists already")
            if target[0] != record.id:  # its own id: written before, nothing to join
                tallies.changed(target, self._merge(conn, target[0], record))
            ids.append(target[0])
        return ids

    def _open_record(self, conn: sqlite3.Connection, record: DeadLetter) -> Tally | None:
        """The tally of the open record of ``record``'s (event id, handler), if any."""
        sql = (
            f"SELECT {TALLY_LIST} FROM {TABLE} "
            f"WHERE event_id = ? AND handler = ? AND status IN {_OPEN}"
        )
        row: Tally | None = conn.execute(sql, (record.event.id, record.handler)).fetchone()
        return row

    def _merge(self, conn: sqlite3.Connection, target: str, record: DeadLetter) -> Tally:
        """Join a redelivered failure to the open record ``target`` of its pair; its new
        tally."""
        t, enc = self.dialect.encode_time, self.dialect.encode_json
        history = "history"
        for _ in record.history:
            history = f"json_insert({history}, '$[#]', json(?))"
        dies = "? = 'dead' AND status = 'scheduled'"
        sql = (
            f"UPDATE {TABLE} SET history = {history}, error_type = ?, error_message = ?, "
            "traceback = ?, fingerprint = ?, attempts = MAX(attempts, ?), updated_at = ?, "
            f"dead_at = CASE WHEN {dies} THEN ? ELSE dead_at END, "
            f"next_attempt_at = CASE WHEN {dies} THEN NULL ELSE next_attempt_at END, "
            f"status = CASE WHEN {dies} THEN 'dead' ELSE status END WHERE id = ? "
            f"RETURNING {TALLY_LIST}"
        )
        status = record.status.value
        new: Tally = conn.execute(
            sql,
            (
                *(enc(entry.to_dict()) for entry in record.history),
                record.error_type,
                record.error_message,
                record.traceback,
                record.fingerprint,
                record.attempts,
                t(record.updated_at),
                status,
                t(record.dead_at),
                status,
                status,
                target,
            ),
        ).fetchone()
        return new

    def save(self, record: DeadLetter, *, lease_owner: str) -> bool:
        return self.save_many([(record, lease_owner)])[0]

    def save_many(self, outcomes: Sequence[tuple[DeadLetter, str]]) -> list[bool]:
        rows = [(record_to_row(record, self.dialect), owner) for record, owner in outcomes]
        tallies = Tallies()
        with self.connections.write() as conn:
            before = tallies_of(conn, [row[0] for row, _ in rows])
            saved: list[bool] = []
            for row, owner in rows:
                done = conn.execute(_UPDATE_ALL, (*row[1:], row[0], owner)).rowcount == 1
                if done:
                    new = of_row(row)
                    tallies.changed(before[row[0]], new)
                    before[row[0]] = new  # the "before" of a later outcome of this record
                saved.append(done)
            tallies.apply(conn)
            return saved

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
        t = self.dialect.encode_time
        only, params = _handler_clause(handlers)
        if exclude:
            only += f" AND id NOT IN ({self.dialect.placeholders(len(exclude))})"
            params += list(exclude)
        due = (
            f"SELECT {TALLY_LIST} FROM {TABLE} WHERE "
            "((status = 'scheduled' AND next_attempt_at <= ?) "
            f" OR (status = 'retrying' AND lease_expires_at <= ?)){only} "
            "ORDER BY next_attempt_at LIMIT ?"
        )
        claim = (
            f"UPDATE {TABLE} SET status = 'retrying', lease_owner = ?, lease_expires_at = ?, "
            "updated_at = ?, attempts = attempts + 1 WHERE id IN ({}) "
            f"RETURNING {COLUMN_LIST}"
        )
        started = time.monotonic()
        tallies = Tallies()
        with self.connections.write() as conn:
            lease_until += timedelta(seconds=time.monotonic() - started)  # the lock wait
            before = {row[0]: row for row in conn.execute(due, (t(now), t(now), *params, limit))}
            rows = []
            if before:
                rows = conn.execute(
                    claim.format(self.dialect.placeholders(len(before))),
                    (owner, t(lease_until), t(now), *before),
                ).fetchall()
                for row in rows:
                    tallies.changed(before[row[0]], of_row(row))
                tallies.apply(conn)
        return sorted((row_to_record(r, self.dialect) for r in rows), key=_due_order)

    def extend_leases(self, ids: Sequence[str], *, owner: str, until: datetime) -> int:
        """As the protocol says; the lease runs from when the write lock is had."""
        if not ids:
            return 0
        among, params = self.dialect.in_("id", ids)
        sql = (
            f"UPDATE {TABLE} SET lease_expires_at = ? "
            f"WHERE {among} AND status = 'retrying' AND lease_owner = ?"
        )
        started = time.monotonic()
        with self.connections.write() as conn:
            until += timedelta(seconds=time.monotonic() - started)
            return int(
                conn.execute(sql, (self.dialect.encode_time(until), *params, owner)).rowcount
            )

    def next_due_at(self, handlers: Collection[tuple[str, str]] | None = None) -> datetime | None:
        only, params = _handler_clause(handlers)
        with self.connections.read() as conn:
            due = conn.execute(
                f"SELECT MIN(next_attempt_at) FROM {TABLE} WHERE status = 'scheduled'{only}",
                params,
            ).fetchone()[0]
            lease = conn.execute(
                f"SELECT MIN(lease_expires_at) FROM {TABLE} WHERE status = 'retrying'{only}",
                params,
            ).fetchone()[0]
        times = [self.dialect.decode_required_time(v) for v in (due, lease) if v is not None]
        return min(times) if times else None

    # -- reads -------------------------------------------------------------------------
    def stats(self, now: datetime) -> Stats:
        with self.connections.read() as conn:
            counts: dict[str, dict[Status, int]] = {}
            for topic, status, n in conn.execute(
                "SELECT topic, status, n FROM redrive_counts WHERE n > 0"
            ):
                counts.setdefault(topic, {})[Status(status)] = n
            oldest: dict[str, datetime] = {}
            for topic, by_status in counts.items():
                if by_status.get(Status.DEAD):
                    row = conn.execute(  # ids are creation order: the first failure
                        f"SELECT created_at FROM {TABLE} WHERE topic = ? AND status = 'dead' "
                        "ORDER BY id LIMIT 1",
                        (topic,),
                    ).fetchone()
                    if row is not None:
                        oldest[topic] = self.dialect.decode_required_time(row[0])
            hour, redead_hour = self._deaths(conn, now - timedelta(hours=1))
            day, redead_day = self._deaths(conn, now - timedelta(days=1))
        return Stats(
            counts=counts,
            oldest_dead_at=oldest,
            new_dead_last_hour=hour,
            new_dead_last_day=day,
            redead_last_hour=redead_hour,
            redead_last_day=redead_day,
        )

    def _deaths(
        self, conn: sqlite3.Connection, since: datetime
    ) -> tuple[dict[str, int], dict[str, int]]:
        """(first deaths, re-deaths) per topic since ``since``, from the timeline."""
        minute = (self.dialect.encode_time(since) or "")[:16]
        rows = conn.execute(
            "SELECT topic, SUM(n), SUM(redead) FROM redrive_dead_timeline "
            "WHERE minute >= ? GROUP BY topic",
            (minute,),
        ).fetchall()
        first = {topic: int(n) for topic, n, _ in rows if n}
        again = {topic: int(r) for topic, _, r in rows if r}
        return first, again

    def dead_timeline(
        self, since: datetime, *, topic: str | None = None
    ) -> list[tuple[datetime, str, int]]:
        """(minute, topic, records that became dead) since ``since``, oldest first."""
        minute = (self.dialect.encode_time(since) or "")[:16]
        sql = "SELECT minute, topic, n FROM redrive_dead_timeline WHERE minute >= ?"
        params: list[Any] = [minute]
        if topic is not None:
            sql += " AND topic = ?"
            params.append(topic)
        with self.connections.read() as conn:
            rows = conn.execute(sql + " ORDER BY minute", params).fetchall()
        return [(self.dialect.decode_required_time(m + ":00Z"), t, n) for m, t, n in rows]

    def prune_timeline(self, before: datetime) -> int:
        minute = (self.dialect.encode_time(before) or "")[:16]
        with self.connections.write() as conn:
            return conn.execute(
                "DELETE FROM redrive_dead_timeline WHERE minute < ?", (minute,)
            ).rowcount

    def groups(self, where: Filter, *, limit: int) -> list[Group]:
        if where == Filter(statuses=where.statuses, topic=where.topic):
            sql, params = self._kept_groups(where)
        else:
            clause, params = build_where(where, self.dialect)
            # SQLite fills bare columns from the row that holds MAX(id): the newest sample.
            sql = (
                "SELECT fingerprint, topic, handler, error_type, COUNT(*), MIN(created_at), "
                f"MAX(updated_at), error_message, MAX(id) FROM {TABLE} WHERE {clause} "
                "GROUP BY fingerprint ORDER BY COUNT(*) DESC, MAX(id) DESC LIMIT ?"
            )
        with self.connections.read() as conn:
            rows = conn.execute(sql, (*params, limit)).fetchall()
        return [group_from_row(row, self.dialect) for row in rows]

    def _kept_groups(self, where: Filter) -> tuple[str, list[Any]]:
        """Groups from the maintained table: a few rows, whatever the table size."""
        clauses, params = ["n > 0"], []
        if where.statuses:
            clauses.append(f"status IN ({self.dialect.placeholders(len(where.statuses))})")
            params += [status.value for status in where.statuses]
        if where.topic is not None:
            clauses.append("topic = ?")
            params.append(where.topic)
        sql = (
            "SELECT fingerprint, topic, handler, error_type, SUM(n), MIN(first_seen), "
            "MAX(last_seen), sample_message, MAX(sample_id) FROM redrive_groups "
            f"WHERE {' AND '.join(clauses)} GROUP BY fingerprint "
            "ORDER BY SUM(n) DESC, MAX(sample_id) DESC LIMIT ?"
        )
        return sql, params

    # -- operator changes --------------------------------------------------------------
    def _transition(self, ids: Sequence[str], change: Change) -> list[str]:
        tallies = Tallies()
        with self.connections.write() as conn:
            before = tallies_of(conn, ids)
            changed = self._transition_in(conn, ids, change)
            for row in changed:
                tallies.changed(before[row[0]], row)
            tallies.apply(conn)
            return [row[0] for row in changed]

    def _transition_in(
        self, conn: sqlite3.Connection, ids: Sequence[str], change: Change
    ) -> list[Tally]:
        """Change the records; the new tally of each record changed."""
        t, enc = self.dialect.encode_time, self.dialect.encode_json
        marks = self.dialect.placeholders(len(ids))
        froms = self.dialect.placeholders(len(change.from_statuses))
        old_statuses = [s.value for s in change.from_statuses]
        entry = change.entry.to_dict() if change.entry else None
        if change.payloads:
            old = dict(
                conn.execute(
                    f"SELECT id, payload FROM {TABLE} "
                    f"WHERE id IN ({marks}) AND status IN ({froms})",
                    (*ids, *old_statuses),
                ).fetchall()
            )
            for record_id, payload in change.payloads.items():
                if record_id in old:
                    conn.execute(
                        f"UPDATE {TABLE} SET payload = ? WHERE id = ?", (enc(payload), record_id)
                    )
        history_sql = "history"
        params: list[Any] = [change.to.value, t(change.now), t(change.next_attempt_at)]
        if entry is not None:
            history_sql = "json_insert(history, '$[#]', json(?))"
            params.append(enc(entry))
        resolved = t(change.now) if change.to == Status.RESOLVED else None
        sql = (
            f"UPDATE {TABLE} SET status = ?, updated_at = ?, next_attempt_at = ?, "
            f"history = {history_sql}, resolved_at = COALESCE(?, resolved_at), "
            "replays = replays + ?, attempts = CASE WHEN ? THEN 0 ELSE attempts END, "
            "lease_owner = NULL, lease_expires_at = NULL "
            f"WHERE id IN ({marks}) AND status IN ({froms}) RETURNING {TALLY_LIST}"
        )
        params += [resolved, int(change.replay), int(change.replay), *ids, *old_statuses]
        changed: list[Tally] = conn.execute(sql, params).fetchall()
        return changed

    def _insert_ignore(self, records: list[DeadLetter]) -> int:
        rows = [record_to_row(record, self.dialect) for record in records]
        tallies = Tallies()
        with self.connections.write() as conn:
            ids = [record.id for record in records]
            there = tallies_of(conn, ids)
            # OR IGNORE: ids already present, and pairs that have an open record already.
            conn.executemany(_INSERT_OR_IGNORE, rows)
            added = [row for i, row in tallies_of(conn, ids).items() if i not in there]
            for row in added:
                tallies.came(row, died_now=False)  # an imported dead letter did not die now
            tallies.apply(conn)
            return len(added)

    def delete(self, ids: Sequence[str], *, where: Filter | None = None) -> int:
        condition, params = self._where(where or Filter())
        deleted = 0
        for chunk in chunks(ids, self.dialect.max_ids):
            among, chosen = self.dialect.in_("id", chunk)
            tallies = Tallies()
            with self.connections.write() as conn:
                sql = f"DELETE FROM {TABLE} WHERE {among} AND {condition} RETURNING {TALLY_LIST}"
                for row in conn.execute(sql, (*chosen, *params)).fetchall():
                    tallies.gone(row)
                    deleted += 1
                tallies.apply(conn)
        return deleted

    # -- small shared state ----------------------------------------------------------
    def meta_put(
        self, namespace: str, key: str, value: JSON, *, version: int | None = None
    ) -> bool:
        encoded = self.dialect.encode_json(value)
        with self.connections.write() as conn:
            row = conn.execute(
                "SELECT version FROM redrive_meta WHERE namespace = ? AND key = ?", (namespace, key)
            ).fetchone()
            current = 0 if row is None else int(row[0])
            if version is not None and version != current:
                return False
            conn.execute(
                "INSERT INTO redrive_meta (namespace, key, value, version) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (namespace, key) "
                "DO UPDATE SET value = excluded.value, version = excluded.version",
                (namespace, key, encoded, current + 1),
            )
            return True


def _due_order(record: DeadLetter) -> tuple[str, str]:
    due = record.next_attempt_at
    return (due.isoformat() if due else "", record.id)


def _handler_clause(handlers: Collection[tuple[str, str]] | None) -> tuple[str, list[str]]:
    if handlers is None:
        return "", []
    pairs = sorted(handlers)
    if not pairs:
        return " AND 0", []
    values = ", ".join("(?, ?)" for _ in pairs)
    return f" AND (topic, handler) IN (VALUES {values})", [part for pair in pairs for part in pair]
