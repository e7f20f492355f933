"""The clock the core reads; tests pass a ``redrive.testing.FakeClock`` instead."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from redrive.models import utcnow


class Clock(Protocol):
    """Anything with ``now()`` returning an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real time."""

    def now(self) -> datetime:
        return utcnow()
