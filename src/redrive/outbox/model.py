"""The values of the transactional outbox: a row, a page of rows, and what a batch did.

Shared by the outbox's two backends (``pg``, ``sqlite``) and the dispatcher.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from redrive.models import JSON, Event

OutboxStatus = Literal["pending", "done", "dead"]

COLUMNS = (
    "id",
    "event_id",
    "topic",
    "payload",
    "key",
    "headers",
    "aggregate_type",
    "aggregate_id",
    "correlation_id",
    "tenant_id",
    "status",
    "attempts",
    "max_attempts",
    "next_attempt_at",
    "last_error",
    "last_error_at",
    "created_at",
    "processed_at",
    "dead_at",
)
INSERT_COLUMNS = (
    "event_id",
    "topic",
    "payload",
    "key",
    "headers",
    "aggregate_type",
    "aggregate_id",
    "correlation_id",
    "tenant_id",
    "max_attempts",
    "next_attempt_at",
    "created_at",
)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class OutboxEvent:
    """One row of ``redrive_outbox``.

    ``topic`` is what the seed calls the event type. ``max_attempts`` None means the
    topic's retry policy decides.

    .. versionadded:: 0.1
    """

    id: int
    event_id: str
    topic: str
    payload: JSON
    key: str | None
    headers: Mapping[str, str]
    aggregate_type: str | None
    aggregate_id: str | None
    correlation_id: str | None
    tenant_id: str | None
    status: OutboxStatus
    attempts: int
    max_attempts: int | None
    next_attempt_at: datetime
    last_error: str | None
    last_error_at: datetime | None
    created_at: datetime
    processed_at: datetime | None = None
    dead_at: datetime | None = None

    def to_event(self) -> Event:
        """The event handlers receive (its id stays the same on every attempt)."""
        return Event(
            id=self.event_id,
            topic=self.topic,
            payload=self.payload,
            key=self.key,
            headers=dict(self.headers),
            correlation_id=self.correlation_id,
            tenant_id=self.tenant_id,
            source="outbox",
            occurred_at=self.created_at,
        )

    def to_dict(self) -> dict[str, JSON]:
        """The JSON shape of the row (times as ISO-8601)."""
        data: dict[str, JSON] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            data[field.name] = value.isoformat() if isinstance(value, datetime) else value
        data["headers"] = dict(self.headers)
        return data


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxPage:
    """Dead outbox events, newest first; pass ``next_cursor`` to get the next page."""

    items: list[OutboxEvent]
    next_cursor: int | None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """What happened to one claimed row: done, retry at ``retry_at``, or dead."""

    id: int
    attempts: int
    error: str | None = None
    retry_at: datetime | None = None
    dead: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class DeadQuery:
    """The selection of ``fetch_dead_events`` / ``count_dead_events``."""

    aggregate_type: str | None = None
    event_type: str | None = None
    since: datetime | None = None


class Batch(Protocol):
    """Rows locked by an open transaction until :meth:`commit` or :meth:`release`."""

    rows: list[OutboxEvent]

    def commit(
        self,
        outcomes: Sequence[Outcome],
        *,
        now: datetime,
        leased: Sequence[int] = (),
        lease_until: datetime | None = None,
        owner: str = "",
    ) -> None: ...

    def release(self) -> None: ...


class OutboxBackend(Protocol):
    """The SQL of one database for the outbox (PostgreSQL or SQLite).

    ``locks_rows``: the backend can keep a batch locked by an open transaction while it
    is delivered (:meth:`lock`); otherwise every batch is claimed under a lease.
    """

    kind: str
    locks_rows: bool

    def insert_sql(self, style: Literal["format", "qmark", "named"]) -> str: ...

    def encode_json(self, value: JSON, *, driver: bool) -> Any: ...

    def encode_time(self, value: datetime) -> Any: ...

    def claim(
        self, *, now: datetime, lease_until: datetime, owner: str, limit: int, by_key: bool
    ) -> list[OutboxEvent]: ...

    def lock(
        self, *, now: datetime, limit: int, by_key: bool, stuck_after: timedelta
    ) -> Batch | None: ...

    def finish(self, outcomes: Sequence[Outcome], *, now: datetime, owner: str) -> None: ...

    def next_due_at(self) -> datetime | None: ...

    def get(self, outbox_id: int) -> OutboxEvent | None: ...

    def fetch_dead(
        self, query: DeadQuery, *, limit: int, cursor: int | None
    ) -> list[OutboxEvent]: ...

    def count_dead(self, query: DeadQuery) -> int: ...

    def retry_dead(self, ids: Sequence[int], *, now: datetime) -> int: ...

    def cleanup_dead(self, before: datetime) -> int: ...

    def archive_done(self, before: datetime, *, batch: int) -> int: ...

    def listen(self, callback: Any) -> Any: ...

    def close(self) -> None: ...
