"""Helpers for testing code that uses redrive: an in-memory store and a fake clock.

``MemoryStore`` is the SQLite store on an in-memory database, so it behaves exactly like
the real default (same SQL, same transitions) with nothing on disk.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from redrive.models import utcnow
from redrive.stores.sqlite import SQLiteStore


class MemoryStore(SQLiteStore):
    """A store that lives in memory, for unit tests.

    .. versionadded:: 0.1
    """

    def __init__(self) -> None:
        super().__init__(":memory:")


class FakeClock:
    """A clock that moves only when told to.

    .. versionadded:: 0.1
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or utcnow()

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float = 0, **delta: float) -> datetime:
        """Move forward by ``seconds`` (or ``timedelta`` keywords); return the new time."""
        self._now += timedelta(seconds=seconds, **delta)
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when``."""
        self._now = when
