"""``Outbox.add``: one INSERT through the application's own connection and transaction.

Works with a psycopg connection or cursor, a SQLAlchemy session or connection, and a
sqlite3 connection. Nothing is committed here: the row commits (or rolls back) with the
application's business writes.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from redrive._ids import new_id
from redrive._json import check_event
from redrive.exceptions import RedriveError
from redrive.models import JSON
from redrive.outbox.model import INSERT_COLUMNS, OutboxBackend

_DRIVERS = {"psycopg": "postgresql", "sqlite3": "sqlite", "sqlalchemy": None}


def insert(
    conn: Any,
    backend: OutboxBackend,
    *,
    topic: str,
    payload: JSON,
    aggregate_type: str | None,
    aggregate_id: str | int | None,
    key: str | None,
    headers: Mapping[str, str] | None,
    correlation_id: str | None,
    tenant_id: str | None,
    max_attempts: int | None,
    now: datetime,
) -> str:
    """Insert one outbox row on ``conn``; return the new event id."""
    _check(topic, payload, headers, max_attempts)
    driver = type(conn).__module__.split(".", 1)[0]
    if driver not in _DRIVERS:
        raise RedriveError(
            "outbox.add needs a psycopg connection, a SQLAlchemy session or connection, "
            f"or a sqlite3 connection; got {type(conn).__module__}.{type(conn).__name__}"
        )
    if inspect.iscoroutinefunction(getattr(conn, "execute", None)):
        # An async connection's execute would return a coroutine nobody awaits: the
        # business transaction would commit without its event.
        raise RedriveError(
            "outbox.add needs a synchronous connection; got the async "
            f"{type(conn).__module__}.{type(conn).__name__}"
        )
    database = _DRIVERS[driver] or _sqlalchemy_database(conn)
    if database != backend.kind:
        raise RedriveError(f"this outbox is on {backend.kind}, but the connection is {database}")
    event_id = new_id()
    native = driver != "sqlalchemy"
    values: dict[str, Any] = {
        "event_id": event_id,
        "topic": topic,
        "payload": backend.encode_json(payload, driver=native),
        "key": key,
        "headers": backend.encode_json(dict(headers or {}), driver=native),
        "aggregate_type": aggregate_type,
        "aggregate_id": None if aggregate_id is None else str(aggregate_id),
        "correlation_id": correlation_id,
        "tenant_id": tenant_id,
        "max_attempts": max_attempts,
        "next_attempt_at": backend.encode_time(now),
        "created_at": backend.encode_time(now),
    }
    if driver == "sqlalchemy":
        from sqlalchemy import text

        conn.execute(text(backend.insert_sql("named")), values)
    else:
        sql = backend.insert_sql("format" if driver == "psycopg" else "qmark")
        conn.execute(sql, [values[c] for c in INSERT_COLUMNS])
    return event_id


def _check(
    topic: str, payload: JSON, headers: Mapping[str, str] | None, max_attempts: int | None
) -> None:
    """Refuse what could never be delivered, before anything is written: the rule every
    source shares (``redrive._json.check_event``)."""
    check_event(topic, payload, headers)
    if max_attempts is not None and max_attempts < 1:
        raise RedriveError(f"max_attempts must be at least 1, got {max_attempts}")


def _sqlalchemy_database(conn: Any) -> str:
    bind = conn.get_bind() if hasattr(conn, "get_bind") else conn.engine
    return "postgresql" if bind.dialect.name == "postgresql" else str(bind.dialect.name)
