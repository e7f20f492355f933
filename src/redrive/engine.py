"""Run one handler for one event under its policy, and write the outcome to the store.

Success on a first attempt writes nothing. A failure builds the record (traceback,
fingerprint, history) and waits until it is durable. A retry (a record claimed by the
scheduler) writes its outcome with a compare-and-set on the lease it holds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from redrive._clock import Clock, SystemClock
from redrive._ids import new_id
from redrive.exceptions import RetryAfter
from redrive.failures import error_message, fingerprint, format_traceback
from redrive.hooks import Hooks
from redrive.models import JSON, Attempt, DeadLetter, Event, Status
from redrive.policy import RetryPolicy, error_name
from redrive.stores.base import Store
from redrive.writer import BatchWriter

logger = logging.getLogger("redrive.engine")

HandlerFn = Callable[[Event], Awaitable[Any] | Any]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class HandlerSpec:
    """A handler subscribed to a topic, with the policy it runs under.

    .. versionadded:: 0.1
    """

    topic: str
    name: str
    fn: HandlerFn
    policy: RetryPolicy
    timeout: float | None = None
    is_async: bool = False

    @classmethod
    def of(
        cls,
        topic: str,
        fn: HandlerFn,
        *,
        name: str | None,
        policy: RetryPolicy,
        timeout: float | None,
    ) -> HandlerSpec:
        """Describe ``fn``; its name defaults to ``module.qualname``."""
        target = fn if inspect.isroutine(fn) else type(fn).__call__
        return cls(
            topic=topic,
            name=name or handler_name(fn),
            fn=fn,
            policy=policy,
            timeout=timeout,
            is_async=inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(target),
        )


def handler_name(fn: object) -> str:
    """``module.qualname`` of a function or callable object."""
    module = getattr(fn, "__module__", None) or "handler"
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{qualname}"


class Engine:
    """Runs handlers and records their failures.

    :param consumer: who runs the handlers (service, host, pid, version), kept on records.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        store: Store,
        *,
        writer: BatchWriter | None = None,
        hooks: Hooks | None = None,
        clock: Clock | None = None,
        consumer: Mapping[str, JSON] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.writer = writer or BatchWriter(store)
        self.hooks = hooks or Hooks()
        self.clock = clock or SystemClock()
        self.consumer = dict(consumer or {})
        self._rand = rand

    async def first_attempt(
        self, event: Event, spec: HandlerSpec, *, origin: Mapping[str, JSON] | None = None
    ) -> DeadLetter | None:
        """Run ``spec`` for a new event; on failure, return the record once it is durable."""
        start = time.perf_counter()
        try:
            if spec.is_async and spec.timeout is None:  # the common case, one frame less
                await spec.fn(event)
            else:
                await self._invoke(spec, event)
        except Exception as error:
            duration = time.perf_counter() - start
            record = self._new_record(event, spec, error, duration, origin or {})
            await self.writer.write(record)
            self._after_failure(record, error, duration)
            return record
        if self.hooks:
            self.hooks.on_success(event, spec.name, time.perf_counter() - start, None)
        return None

    async def retry(self, record: DeadLetter, spec: HandlerSpec, *, owner: str) -> DeadLetter:
        """Run ``spec`` again for a claimed record and save the outcome under its lease."""
        start = time.perf_counter()
        error: Exception | None = None
        try:
            await self._invoke(spec, record.event)
        except Exception as exc:
            error = exc
        duration = time.perf_counter() - start
        if error is None:
            outcome = self._resolved(record, duration)
        else:
            outcome = self._failed_again(record, spec, error, duration)
        saved = await asyncio.to_thread(self.store.save, outcome, lease_owner=owner)
        if not saved:
            logger.warning("lease on %s was lost; another worker owns it now", record.id)
            return outcome
        if error is None:
            if self.hooks:
                self.hooks.on_success(record.event, spec.name, duration, outcome)
        else:
            self._after_failure(outcome, error, duration)
        return outcome

    async def _invoke(self, spec: HandlerSpec, event: Event) -> None:
        call = spec.fn(event) if spec.is_async else asyncio.to_thread(spec.fn, event)
        if spec.timeout is not None:
            await asyncio.wait_for(call, spec.timeout)
        else:
            await call

    def _after_failure(self, record: DeadLetter, error: BaseException, duration: float) -> None:
        if not self.hooks:
            return
        self.hooks.on_failure(record, error, duration)
        if record.status == Status.DEAD:
            self.hooks.on_dead(record)

    def _new_record(
        self,
        event: Event,
        spec: HandlerSpec,
        error: Exception,
        duration: float,
        origin: Mapping[str, JSON],
    ) -> DeadLetter:
        now = self.clock.now()
        decision = spec.policy.decide(1, error, now, self._rand)
        entry = _attempt_entry(error, now, duration, decision.reason)
        return DeadLetter(
            id=new_id(),
            event=event,
            handler=spec.name,
            status=Status.DEAD if decision.dead else Status.SCHEDULED,
            attempts=1,
            max_attempts=spec.policy.max_attempts,
            error_type=error_name(error),
            error_message=error_message(error),
            traceback=format_traceback(error),
            fingerprint=fingerprint(event.topic, spec.name, error),
            created_at=now,
            updated_at=now,
            history=(entry,),
            origin=dict(origin),
            consumer=self.consumer,
            next_attempt_at=decision.retry_at,
            dead_at=now if decision.dead else None,
        )

    def _failed_again(
        self, record: DeadLetter, spec: HandlerSpec, error: Exception, duration: float
    ) -> DeadLetter:
        now = self.clock.now()
        attempt = record.attempts + 1
        decision = spec.policy.decide(attempt, error, now, self._rand)
        return record.replace(
            status=Status.DEAD if decision.dead else Status.SCHEDULED,
            attempts=attempt,
            max_attempts=spec.policy.max_attempts,
            error_type=error_name(error),
            error_message=error_message(error),
            traceback=format_traceback(error),
            fingerprint=fingerprint(record.topic, spec.name, error),
            history=(*record.history, _attempt_entry(error, now, duration, decision.reason)),
            consumer=self.consumer or record.consumer,
            updated_at=now,
            next_attempt_at=decision.retry_at,
            dead_at=now if decision.dead else record.dead_at,
            lease_owner=None,
            lease_expires_at=None,
        )

    def _resolved(self, record: DeadLetter, duration: float) -> DeadLetter:
        now = self.clock.now()
        entry = Attempt(kind="success", at=now, duration=duration)
        return record.replace(
            status=Status.RESOLVED,
            attempts=record.attempts + 1,
            history=(*record.history, entry),
            updated_at=now,
            resolved_at=now,
            next_attempt_at=None,
            lease_owner=None,
            lease_expires_at=None,
        )


def _attempt_entry(error: Exception, now: Any, duration: float, reason: str) -> Attempt:
    detail: dict[str, JSON] = {"decision": reason}
    if isinstance(error, RetryAfter):
        detail["retry_after"] = error.seconds
    return Attempt(
        kind="attempt",
        at=now,
        error_type=error_name(error),
        error_message=error_message(error),
        duration=duration,
        detail=detail,
    )
