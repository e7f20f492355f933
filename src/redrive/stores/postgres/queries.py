"""The SQL of the PostgreSQL store, and how values travel to it (JSONB, timestamptz).

Statements are built only from fixed fragments and column names; every value is a bound
parameter. Table names are unqualified: each pooled connection has the store's schema
on its ``search_path``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from redrive._json import dumps as encode
from redrive.models import DeadLetter, Status, format_time, parse_time
from redrive.stores.base import Change
from redrive.stores.sql import (
    COLUMN_LIST,
    COLUMNS,
    OPEN_STATUSES,
    TABLE,
    Dialect,
    record_to_row,
)

BATCH = 1000
"""Rows per INSERT and UPDATE, and ids per statement: each statement's work stays bounded
(and an IN list of ids under the 65,535 parameters a statement may have)."""


def _scrub(value: Any) -> Any:
    """PostgreSQL text and JSONB cannot hold NUL characters: show them as U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """JSON text for a JSONB column (non-JSON values as their ``str``, NULs replaced)."""
    text = encode(value)
    if "\\u0000" not in text:
        return text
    return json.dumps(_scrub(json.loads(text)), separators=(",", ":"), ensure_ascii=False)


class PgDialect(Dialect):
    """JSON as JSONB (psycopg decodes it), times as timestamptz, case-insensitive search."""

    param = "%s"
    like = "ILIKE"
    max_ids = BATCH

    def in_(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(%s)", [list(values)]

    def encode_json(self, value: Any) -> Any:
        # Encoded now, not when psycopg adapts it: a payload that is not JSON fails while
        # the row is built (a StoreError for that record), never inside a batch's INSERT.
        text = dumps(value)
        return Jsonb(value, dumps=lambda _: text)

    def decode_json(self, value: Any) -> Any:
        return value

    def encode_time(self, value: datetime | None) -> Any:
        return value

    def decode_time(self, value: Any) -> datetime | None:
        return parse_time(value)


def row_of(record: DeadLetter, dialect: Dialect) -> tuple[Any, ...]:
    """``record_to_row`` with NUL characters replaced in text columns."""
    return tuple(
        v.replace("\x00", "\ufffd") if isinstance(v, str) and "\x00" in v else v
        for v in record_to_row(record, dialect)
    )


@functools.cache
def insert(*, ignore: bool = False) -> str:
    """A multi-row INSERT of records (one statement: one trigger run), its parameters one
    array per column (``columns``).

    ``ignore`` skips rows that clash with a row already there (an id, or an open record
    of the same (event id, handler)); otherwise a failure of a pair with an open record is
    merged into that record (see ``Store.add``), and the statement returns the id each
    pair is stored under. Merging skips a row whose own id is already there: a retry after
    a commit whose answer was lost changes nothing.
    """
    sql = f"INSERT INTO {TABLE} AS t ({COLUMN_LIST}) SELECT * FROM unnest({_arrays(COLUMNS)})"
    if ignore:
        return sql + " ON CONFLICT DO NOTHING"
    dies = "excluded.status = 'dead' AND t.status = 'scheduled'"
    return sql + (
        f" ON CONFLICT (event_id, handler) WHERE status IN {OPEN} DO UPDATE SET "
        "history = t.history || excluded.history, error_type = excluded.error_type, "
        "error_message = excluded.error_message, traceback = excluded.traceback, "
        "fingerprint = excluded.fingerprint, attempts = greatest(t.attempts, excluded.attempts), "
        f"updated_at = excluded.updated_at, "
        f"dead_at = CASE WHEN {dies} THEN excluded.dead_at ELSE t.dead_at END, "
        f"next_attempt_at = CASE WHEN {dies} THEN NULL ELSE t.next_attempt_at END, "
        f"status = CASE WHEN {dies} THEN 'dead' ELSE t.status END "
        "WHERE t.id <> excluded.id RETURNING t.event_id, t.handler, t.id"
    )


OPEN = "(" + ", ".join(f"'{status}'" for status in OPEN_STATUSES) + ")"


def rounds(records: Sequence[DeadLetter]) -> list[list[int]]:
    """Indexes of ``records`` in rounds where no (event id, handler) repeats: one INSERT
    ... ON CONFLICT DO UPDATE may not touch a row twice."""
    out: list[list[int]] = []
    seen: list[set[tuple[str, str]]] = []
    for index, record in enumerate(records):
        key = (record.event.id, record.handler)
        for keys, members in zip(seen, out, strict=True):
            if key not in keys:
                keys.add(key)
                members.append(index)
                break
        else:
            seen.append({key})
            out.append([index])
    return out


def columns(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """The parameters of a statement that reads its rows from ``unnest``: one list per
    column.

    A batch's rows travel as one array per column, not as a VALUES list of one parameter
    per value: the statement's text is then the same for any number of rows, so psycopg
    parses it once and the server prepares it once. (psycopg caches the parse of a
    statement of at most 50 parameters; a VALUES list of 6 records has 180, and parsing it
    again for every batch took a quarter of the writer threads' time.)"""
    return [list(column) for column in zip(*rows, strict=True)]


UPDATE_ALL = (
    f"UPDATE {TABLE} SET {', '.join(f'{c} = %s' for c in COLUMNS[1:])} "
    "WHERE id = %s AND status = 'retrying' AND lease_owner = %s"
)


_CASTS = {
    **dict.fromkeys(("payload", "headers", "history", "origin", "consumer"), "jsonb"),
    **dict.fromkeys(("attempts", "max_attempts", "replays"), "integer"),
    **dict.fromkeys(
        (
            "occurred_at",
            "created_at",
            "updated_at",
            "next_attempt_at",
            "dead_at",
            "resolved_at",
            "lease_expires_at",
        ),
        "timestamptz",
    ),
}


def _arrays(names: Sequence[str]) -> str:
    """One array parameter per column, cast to the column's type, for ``unnest``."""
    return ", ".join(f"%b::{_CASTS.get(name, 'text')}[]" for name in names)


SAVE_OUTCOMES = (
    f"UPDATE {TABLE} AS t SET {', '.join(f'{c} = v.{c}' for c in COLUMNS[1:])} "
    f"FROM unnest({_arrays((*COLUMNS, 'owner'))}) AS v ({COLUMN_LIST}, owner) "
    "WHERE t.id = v.id COLLATE \"C\" AND t.status = 'retrying' AND t.lease_owner = v.owner "
    "RETURNING t.id"
)
"""One UPDATE of a batch of retry outcomes (``columns`` of each row's ``COLUMNS`` then its
lease owner), each fenced on its own claim as ``UPDATE_ALL`` is; it returns the ids it
saved. One statement: one round trip and one run of the counts trigger for the batch."""


SAVED = f"SELECT 1 FROM {TABLE} WHERE id = %s AND history @> %s::jsonb"
"""Whether a record's history holds the entry of the outcome ``saved_params`` describes:
that save committed. Not its status or lease: once the save committed, the record is
the next claim's (a retry due in 50 ms may be claimed and run before the retried save
asks), and that later claim keeps the entry."""


def saved_params(record: DeadLetter) -> tuple[Any, ...]:
    """The parameters of ``SAVED`` for the outcome ``record`` (its last history entry,
    the one the outcome added, by kind and time)."""
    last = record.history[-1]
    return (record.id, encode([{"kind": last.kind, "at": format_time(last.at)}]))


def claim(only: str) -> str:
    """Claim due rows in one statement: retrying rows whose lease expired first (by lease
    time), then scheduled rows by due time, up to the limit, skipping rows another worker
    is claiming right now. Its parameters: now, ``only``'s, the limit, now, ``only``'s,
    the lease owner, the lease's end, now."""
    return (
        f"WITH expired AS MATERIALIZED (SELECT id FROM {TABLE} WHERE status = 'retrying' "
        f"AND lease_expires_at <= %s{only} ORDER BY lease_expires_at LIMIT %s "
        "FOR UPDATE SKIP LOCKED), "
        f"due AS MATERIALIZED (SELECT id FROM {TABLE} WHERE status = 'scheduled' "
        f"AND next_attempt_at <= %s{only} ORDER BY next_attempt_at "
        "LIMIT greatest(%s - (SELECT count(*) FROM expired), 0) FOR UPDATE SKIP LOCKED) "
        f"UPDATE {TABLE} AS d SET status = 'retrying', lease_owner = %s, "
        "lease_expires_at = %s, updated_at = %s, attempts = d.attempts + 1 "
        "FROM (SELECT id FROM expired UNION ALL SELECT id FROM due) AS chosen "
        "WHERE d.id = chosen.id "
        f"RETURNING {', '.join(f'd.{c}' for c in COLUMNS)}"
    )


EXTEND_LEASES = (  # its parameters: the ids, the lease owner, the lease's end
    # The rows are locked first and the lease runs from then: a heartbeat queued behind
    # another transaction's row lock still grants a whole lease. (A plain UPDATE computes
    # its new values before it waits for the lock.) The id order keeps two of them from
    # deadlocking.
    f"WITH held AS MATERIALIZED (SELECT id FROM {TABLE} WHERE id = ANY(%s) "
    "AND status = 'retrying' AND lease_owner = %s ORDER BY id FOR UPDATE) "
    f"UPDATE {TABLE} AS d SET lease_expires_at = "
    "%s::timestamptz + (clock_timestamp() - statement_timestamp()) "
    "FROM held WHERE d.id = held.id"
)


def handler_clause(handlers: Collection[tuple[str, str]] | None) -> tuple[str, list[Any]]:
    """A condition limiting rows to these (topic, handler) pairs, and its parameters."""
    if handlers is None:
        return "", []
    pairs = sorted(set(handlers))
    return (
        " AND (topic, handler) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
        [[t for t, _ in pairs], [h for _, h in pairs]],
    )


STATS_COUNTS = "SELECT topic, status, n FROM redrive_counts WHERE n > 0"
STATS_OLDEST = (  # ids are creation order: the oldest dead letter's first failure
    f"SELECT c.topic, (SELECT created_at FROM {TABLE} AS d "
    "WHERE d.status = 'dead' AND d.topic = c.topic ORDER BY id LIMIT 1) "
    "FROM redrive_counts AS c WHERE c.status = 'dead' AND c.n > 0"
)
STATS_NEW_DEAD = (
    "WITH w AS (SELECT topic, minute >= date_trunc('minute', %s::timestamptz) AS recent, n, "
    "redead FROM redrive_dead_timeline WHERE minute >= date_trunc('minute', %s::timestamptz)) "
    "SELECT topic, sum(n) FILTER (WHERE recent), sum(n), sum(redead) FILTER (WHERE recent), "
    "sum(redead) FROM w GROUP BY topic"
)
AUDIT_INSERT = (
    "INSERT INTO redrive_audit (id, at, actor, action, count, detail) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)


def groups(clause: str) -> str:
    """Error groups among rows matching ``clause``, biggest first, with the newest sample."""
    return (
        "WITH g AS (SELECT fingerprint, topic, handler, error_type, count(*) AS n, "
        "min(created_at) AS first_seen, max(created_at) AS last_seen, max(id) AS sample "
        f"FROM {TABLE} WHERE {clause} GROUP BY fingerprint, topic, handler, error_type "
        "ORDER BY n DESC, sample DESC LIMIT %s) "
        "SELECT g.fingerprint, g.topic, g.handler, g.error_type, g.n, g.first_seen, "
        f"g.last_seen, d.error_message, g.sample FROM g JOIN {TABLE} AS d ON d.id = g.sample "
        "ORDER BY g.n DESC, g.sample DESC"
    )


def transition(ids: list[str], change: Change, dialect: Dialect) -> tuple[str, list[Any]]:
    """One UPDATE applying ``change`` to those of ``ids`` still in its old statuses."""
    sets = ["status = %s", "updated_at = %s", "next_attempt_at = %s"]
    params: list[Any] = [change.to.value, change.now, change.next_attempt_at]
    if change.entry is not None:
        sets.append("history = history || %s")
        params.append(dialect.encode_json([change.entry.to_dict()]))
    if change.payloads:
        sets.append(
            "payload = CASE WHEN jsonb_exists(%s::jsonb, id) THEN %s::jsonb -> id ELSE payload END"
        )
        patch = dialect.encode_json(dict(change.payloads))
        params += [patch, patch]
    if change.to == Status.RESOLVED:
        sets.append("resolved_at = %s")
        params.append(change.now)
    if change.replay:
        sets += ["replays = replays + 1", "attempts = 0"]
    sets += ["lease_owner = NULL", "lease_expires_at = NULL"]
    sql = (
        f"UPDATE {TABLE} SET {', '.join(sets)} WHERE id = ANY(%s) AND status = ANY(%s) RETURNING id"
    )
    return sql, [*params, ids, [s.value for s in change.from_statuses]]


def meta_put(namespace: str, key: str, value: Any, version: int | None) -> tuple[str, list[Any]]:
    """The compare-and-set write of a meta value (see ``Store.meta_put``)."""
    insert = "INSERT INTO redrive_meta AS m (namespace, key, value, version) VALUES (%s, %s, %s, 1)"
    if version is None:
        return (
            insert + " ON CONFLICT (namespace, key) "
            "DO UPDATE SET value = excluded.value, version = m.version + 1",
            [namespace, key, value],
        )
    if version == 0:
        return insert + " ON CONFLICT (namespace, key) DO NOTHING", [namespace, key, value]
    return (
        "UPDATE redrive_meta SET value = %s, version = version + 1 "
        "WHERE namespace = %s AND key = %s AND version = %s",
        [value, namespace, key, version],
    )
