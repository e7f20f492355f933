"""The outbox's repository API for operators: dead events, retries, cleanup, archive.

Cursor pagination, never offsets; every method goes through the backend of the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from redrive._batch import chunks
from redrive._clock import Clock
from redrive.exceptions import InvalidTransition, NotFound, RedriveError
from redrive.outbox.model import DeadQuery, OutboxBackend, OutboxEvent, OutboxPage


class OutboxRepository:
    """Reads and repairs of outbox rows; ``Outbox`` adds the dispatcher."""

    _backend: OutboxBackend
    clock: Clock

    def get(self, outbox_id: int) -> OutboxEvent:
        """The outbox row with that id; raises ``NotFound``."""
        row = self._backend.get(outbox_id)
        if row is None:
            raise NotFound(f"no outbox event with id {outbox_id}")
        return row

    def fetch_dead_events(
        self,
        limit: int = 100,
        cursor: int | None = None,
        aggregate_type: str | None = None,
        event_type: str | None = None,
        since: datetime | None = None,
    ) -> OutboxPage:
        """Dead events, newest first, ``limit`` at a time; ``event_type`` is the topic,
        ``since`` bounds when they went dead. Pass ``next_cursor`` for the next page."""
        if limit < 1:
            raise RedriveError(f"limit must be at least 1, got {limit}")
        query = DeadQuery(aggregate_type=aggregate_type, event_type=event_type, since=since)
        items = self._backend.fetch_dead(query, limit=limit + 1, cursor=cursor)
        return OutboxPage(items[:limit], items[limit - 1].id if len(items) > limit else None)

    def count_dead_events(
        self,
        aggregate_type: str | None = None,
        event_type: str | None = None,
        since: datetime | None = None,
    ) -> int:
        """How many dead events match."""
        query = DeadQuery(aggregate_type=aggregate_type, event_type=event_type, since=since)
        return self._backend.count_dead(query)

    def retry_dead_event(self, event_id: int) -> None:
        """Put a dead event back to ``pending`` with fresh attempts.

        Raises ``NotFound`` if there is no such event and ``InvalidTransition`` if it is
        not dead (a pending event is already being retried; a done one was delivered).
        """
        if self._backend.retry_dead([event_id], now=self.clock.now()) == 1:
            return
        row = self.get(event_id)
        raise InvalidTransition(f"outbox event {event_id} is {row.status}, not dead")

    def retry_dead_events_batch(self, event_ids: Iterable[int]) -> int:
        """Put these dead events back to ``pending``; return how many were dead."""
        ids = list(dict.fromkeys(event_ids))
        return sum(
            self._backend.retry_dead(list(part), now=self.clock.now()) for part in chunks(ids)
        )

    def cleanup_old_dead_events(self, older_than_days: int = 30) -> int:
        """Delete dead events that went dead more than ``older_than_days`` ago."""
        if older_than_days < 0:
            raise RedriveError(f"older_than_days cannot be negative, got {older_than_days}")
        return self._backend.cleanup_dead(self.clock.now() - timedelta(days=older_than_days))

    def archive(self, older_than: timedelta, *, batch: int = 10_000) -> int:
        """Move ``done`` rows delivered more than ``older_than`` ago to
        ``redrive_outbox_archive``, a batch per transaction; return how many moved."""
        before, moved = self.clock.now() - older_than, 0
        while count := self._backend.archive_done(before, batch=batch):
            moved += count
        return moved
