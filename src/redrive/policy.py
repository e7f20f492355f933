"""Retry policies: pure functions from (attempt, error, now) to a Decision. No I/O.

The backoff is exponential, capped, with jitter (AWS "full jitter" by default), the
same shape as Celery's ``retry_backoff`` and dramatiq's ``compute_backoff``.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from redrive.exceptions import NonRetriableError, PolicyError, RetryAfter

Jitter = Literal["full", "equal", "none"]


class _PydanticValidationErrorMeta(type):
    def __instancecheck__(cls, instance: object) -> bool:
        # Looked up only if the app imported pydantic: redrive itself never imports it.
        for module_name in ("pydantic_core", "pydantic"):
            module = sys.modules.get(module_name)
            error_class = getattr(module, "ValidationError", None)
            if isinstance(error_class, type) and isinstance(instance, error_class):
                return True
        return False


class PydanticValidationError(Exception, metaclass=_PydanticValidationErrorMeta):
    """Stands for ``pydantic.ValidationError`` in ``dead_on`` without importing pydantic."""


DEFAULT_DEAD_ON: tuple[type[BaseException], ...] = (
    NonRetriableError,
    ValueError,
    TypeError,
    KeyError,
    PydanticValidationError,
)


LONGEST_DELAY = 366 * 86400.0
"""The cap on any retry delay, ``RetryAfter`` included: a year."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How often and how soon a failed handler is tried again.

    :param max_attempts: attempts in all, the first one included (1 = never retry).
    :param initial_delay: seconds before the first retry, before jitter.
    :param multiplier: growth of the delay from one retry to the next.
    :param max_delay: cap on any one delay, in seconds.
    :param jitter: ``full`` (uniform in [0, delay]), ``equal`` ([delay/2, delay]) or ``none``.
    :param retry_on: exception classes that are always retried (checked first).
    :param dead_on: exception classes that go dead at once. ``retry_on`` wins over it.

    .. versionadded:: 0.1
    """

    max_attempts: int = 3
    initial_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 60.0
    jitter: Jitter = "full"
    retry_on: tuple[type[BaseException], ...] = ()
    dead_on: tuple[type[BaseException], ...] = DEFAULT_DEAD_ON

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise PolicyError("max_attempts must be 1 or more")
        if not 0 <= self.initial_delay <= LONGEST_DELAY or not 0 <= self.max_delay <= LONGEST_DELAY:
            raise PolicyError("delays must be between zero seconds and a year")
        if self.multiplier < 1:
            raise PolicyError("multiplier must be 1 or more")
        if self.jitter not in ("full", "equal", "none"):
            raise PolicyError("jitter must be 'full', 'equal' or 'none'")

    def replace(self, **changes: Any) -> RetryPolicy:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def is_retriable(self, error: BaseException) -> bool:
        """Tell whether ``error`` may be retried under this policy."""
        if isinstance(error, RetryAfter):
            return True
        if self.retry_on and isinstance(error, self.retry_on):
            return True
        return not isinstance(error, self.dead_on)

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), jitter applied."""
        return backoff(
            attempt,
            initial=self.initial_delay,
            multiplier=self.multiplier,
            cap=self.max_delay,
            jitter=self.jitter,
            rand=rand,
        )

    def decide(
        self,
        attempt: int,
        error: BaseException,
        now: datetime,
        rand: Callable[[], float] = random.random,
    ) -> Decision:
        """Decide what follows failed attempt number ``attempt`` (1-based)."""
        if not self.is_retriable(error):
            return Decision(retry_at=None, reason="non_retriable")
        if attempt >= self.max_attempts:
            return Decision(retry_at=None, reason="exhausted")
        retry_after = error.seconds if isinstance(error, RetryAfter) else None
        seconds = self.delay(attempt, rand) if retry_after is None else retry_after
        # A handler's RetryAfter may exceed max_delay (a server's Retry-After is honoured),
        # but never the longest delay a datetime can hold comfortably.
        seconds = min(seconds, LONGEST_DELAY)
        return Decision(retry_at=now + timedelta(seconds=seconds), reason="retry")

    def timeline(self) -> list[tuple[int, float, float]]:
        """(retry number, longest delay, longest cumulative wait) for each retry, in seconds."""
        rows, total = [], 0.0
        for attempt in range(1, self.max_attempts):
            delay = self.delay(attempt, rand=lambda: 1.0)
            total += delay
            rows.append((attempt, delay, total))
        return rows


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """What follows a failure: retry at ``retry_at``, or go dead (``retry_at`` is None)."""

    retry_at: datetime | None
    reason: Literal["retry", "exhausted", "non_retriable"]

    @property
    def dead(self) -> bool:
        """True when the record goes dead."""
        return self.retry_at is None


def backoff(
    attempt: int,
    *,
    initial: float,
    multiplier: float,
    cap: float,
    jitter: Jitter = "full",
    rand: Callable[[], float] = random.random,
) -> float:
    """Exponential backoff: ``min(cap, initial * multiplier ** (attempt - 1))`` with jitter."""
    exponent = max(attempt - 1, 0)
    try:
        base = min(cap, initial * multiplier**exponent)
    except OverflowError:
        base = cap
    if jitter == "full":
        return base * rand()
    if jitter == "equal":
        return base / 2 + base / 2 * rand()
    return base


def error_name(error: BaseException) -> str:
    """The qualified name users see for an exception class (``module.Class``, builtins bare)."""
    cls = type(error)
    if cls.__module__ in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"
