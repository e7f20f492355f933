"""Run one handler for one event under its policy, and write the outcome to the store.

Success on a first attempt writes nothing. A failure builds the record (traceback,
fingerprint, history) and waits until it is durable. A retry (a record claimed by the
scheduler) writes its outcome with a compare-and-set on the lease it holds.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from redrive._clock import Clock, SystemClock
from redrive._ids import new_id
from redrive.core.failures import Failure, describe
from redrive.core.writer import BatchWriter
from redrive.exceptions import RetryAfter, WorkerLost
from redrive.hooks import Hooks
from redrive.models import JSON, Attempt, DeadLetter, Event, Status
from redrive.policy import Decision, RetryPolicy, error_name
from redrive.redact import Redactor
from redrive.stores.base import Store

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


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """One run of one handler: its error (None on success) and how long it took.

    .. versionadded:: 0.2
    """

    spec: HandlerSpec
    error: Exception | None
    duration: float


class Engine:
    """Runs handlers and records their failures.

    :param consumer: who runs the handlers (service, host, pid, version), kept on records.
    :param redactor: scrubs the payload's masked values out of error text before a record
        is written (a validation error may quote the secret it rejects).
    :param handler_threads: threads for plain ``def`` handlers: their own pool, so slow
        sync handlers never starve the store calls and lease heartbeats.

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
        redactor: Redactor | None = None,
        handler_threads: int = 32,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.writer = writer or BatchWriter(store)
        self.hooks = hooks or Hooks()
        self.clock = clock or SystemClock()
        self.consumer = dict(consumer or {})
        self.redactor = redactor or Redactor()
        self._redacts = bool(self.redactor)  # its patterns are fixed when it is made
        self._pool = ThreadPoolExecutor(handler_threads, thread_name_prefix="redrive-handler")
        self._rand = rand

    def close(self) -> None:
        """Release the handler threads (after the handlers running in them finish)."""
        self._pool.shutdown(wait=True)

    async def first_attempt(
        self, event: Event, spec: HandlerSpec, *, origin: Mapping[str, JSON] | None = None
    ) -> DeadLetter | None:
        """Run ``spec`` for a new event; on failure, return the record once it is durable."""
        if spec.is_async and spec.timeout is None:  # publish's hot path: ``run`` inlined,
            start = time.perf_counter()  # so a success allocates no Outcome
            try:
                await spec.fn(event)
            except Exception as error:
                outcome = Outcome(spec, error, time.perf_counter() - start)
            else:
                if self.hooks:
                    self.hooks.on_success(event, spec.name, time.perf_counter() - start, None)
                return None
        else:
            outcome = await self.run(spec, event)
            if outcome.error is None:
                self.succeeded(event, outcome)
                return None
        return await self.record(self.failure_record(event, outcome, origin=origin), outcome)

    # -- the steps of an attempt, for sources that decide acks themselves (transports) ----
    async def run(self, spec: HandlerSpec, event: Event) -> Outcome:
        """Run the handler once (its timeout applies; a plain ``def`` runs in the engine's
        threads). The handler's error is returned in the outcome, never raised."""
        start = time.perf_counter()
        try:
            if spec.is_async and spec.timeout is None:  # the common case, one frame less
                await spec.fn(event)
            else:
                await self._invoke(spec, event)
        except Exception as error:
            return Outcome(spec, error, time.perf_counter() - start)
        return Outcome(spec, None, time.perf_counter() - start)

    def decide(self, spec: HandlerSpec, error: BaseException, attempt: int) -> Decision:
        """What the handler's policy says follows failed attempt number ``attempt``, now."""
        return spec.policy.decide(attempt, error, self.clock.now(), self._rand)

    def failure_record(
        self,
        event: Event,
        outcome: Outcome,
        *,
        attempt: int = 1,
        decision: Decision | None = None,
        origin: Mapping[str, JSON] | None = None,
    ) -> DeadLetter:
        """The record of failed attempt number ``attempt`` (not written yet): ``dead`` or
        ``scheduled`` as ``decision`` says (by default, as the policy decides)."""
        error = outcome.error
        assert error is not None, "failure_record needs a failed outcome"
        spec, now = outcome.spec, self.clock.now()
        if decision is None:
            decision = spec.policy.decide(attempt, error, now, self._rand)
        failure = describe(error, event.topic, spec.name)
        entry = _attempt_entry(error, failure, now, outcome.duration, decision.reason)
        return self._scrubbed(
            DeadLetter(
                id=new_id(),
                event=event,
                handler=spec.name,
                status=Status.DEAD if decision.dead else Status.SCHEDULED,
                attempts=attempt,
                max_attempts=spec.policy.max_attempts,
                error_type=failure.error_type,
                error_message=failure.message,
                traceback=failure.traceback,
                fingerprint=failure.fingerprint,
                created_at=now,
                updated_at=now,
                history=(entry,),
                origin=dict(origin or {}),
                consumer=self.consumer,
                next_attempt_at=decision.retry_at,
                dead_at=now if decision.dead else None,
            )
        )

    async def record(self, record: DeadLetter, outcome: Outcome) -> DeadLetter:
        """Write a new failure record and return it once it is durable (group commit), then
        fire the hooks. Recording is idempotent: while a record of the same (event id,
        handler) is open, the store merges this failure into it, and the record returned
        carries that record's id."""
        stored_id = await self.writer.write(record)
        if stored_id != record.id:
            record = record.replace(id=stored_id)
        assert outcome.error is not None
        self._after_failure(record, outcome.error, outcome.duration)
        return record

    def succeeded(self, event: Event, outcome: Outcome) -> None:
        """Tell the hooks that a first attempt succeeded."""
        if self.hooks:
            self.hooks.on_success(event, outcome.spec.name, outcome.duration, None)

    async def retry(self, record: DeadLetter, spec: HandlerSpec, *, owner: str) -> DeadLetter:
        """Run ``spec`` again for a claimed record and save the outcome under its lease.

        A claim counts the attempt (``attempts`` grows at claim time), so attempts cut off
        by a dying worker count too: once they exceed the policy's, the record goes dead
        with ``WorkerLost`` instead of crashing worker after worker.
        """
        record = _note_interrupted(record, self.clock.now())
        if self.hooks and record.replays and record.attempts == 1:
            self.hooks.on_replay([record], _replayed_by(record))
        start = time.perf_counter()
        error: Exception | None = None
        if record.attempts > spec.policy.max_attempts:
            error = WorkerLost(
                f"the worker stopped during attempt {record.attempts - 1} (crash, kill or out "
                f"of memory) and the policy allows {spec.policy.max_attempts} attempts"
            )
        else:
            try:
                await self._invoke(spec, record.event)
            except Exception as exc:
                error = exc
        duration = time.perf_counter() - start
        if error is None:
            outcome = self._resolved(record, duration)
        else:
            outcome = self._failed_again(record, spec, error, duration)
        saved = await self.writer.save(outcome, lease_owner=owner)
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
        if spec.timeout is not None:
            await asyncio.wait_for(self._call(spec, event), spec.timeout)
        else:
            await self._call(spec, event)

    async def _call(self, spec: HandlerSpec, event: Event) -> None:
        if spec.is_async:
            await spec.fn(event)
            return
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        result = await loop.run_in_executor(self._pool, context.run, spec.fn, event)
        if inspect.isawaitable(result):  # a plain def (a lambda, a partial) that returned a
            await result  # coroutine: its work and its errors are in there

    def _after_failure(self, record: DeadLetter, error: BaseException, duration: float) -> None:
        if not self.hooks:
            return
        self.hooks.on_failure(record, error, duration)
        if record.status == Status.DEAD:
            self.hooks.on_dead(record)

    def _failed_again(
        self, record: DeadLetter, spec: HandlerSpec, error: Exception, duration: float
    ) -> DeadLetter:
        now = self.clock.now()
        attempt = record.attempts  # counted when the record was claimed
        decision = spec.policy.decide(attempt, error, now, self._rand)
        failure = describe(error, record.topic, spec.name)
        entry = _attempt_entry(error, failure, now, duration, decision.reason)
        return self._scrubbed(
            record.replace(
                status=Status.DEAD if decision.dead else Status.SCHEDULED,
                attempts=attempt,
                max_attempts=spec.policy.max_attempts,
                error_type=failure.error_type,
                error_message=failure.message,
                traceback=failure.traceback,
                fingerprint=failure.fingerprint,
                history=(*record.history, entry),
                consumer=self.consumer or record.consumer,
                updated_at=now,
                next_attempt_at=decision.retry_at,
                dead_at=now if decision.dead else record.dead_at,
                lease_owner=None,
                lease_expires_at=None,
            )
        )

    def _scrubbed(self, record: DeadLetter) -> DeadLetter:
        """The record with the payload's masked values taken out of its error text."""
        if not self._redacts:
            return record
        secrets = self.redactor.secrets(record.payload)
        if not secrets:
            return record
        scrub = self.redactor.scrub
        history = tuple(
            entry
            if entry.error_message is None
            else dataclasses.replace(entry, error_message=scrub(entry.error_message, secrets))
            for entry in record.history
        )
        return record.replace(
            error_message=scrub(record.error_message, secrets),
            traceback=scrub(record.traceback, secrets),
            history=history,
        )

    def _resolved(self, record: DeadLetter, duration: float) -> DeadLetter:
        now = self.clock.now()
        entry = Attempt(kind="success", at=now, duration=duration)
        return record.replace(
            status=Status.RESOLVED,
            history=(*record.history, entry),
            updated_at=now,
            resolved_at=now,
            next_attempt_at=None,
            lease_owner=None,
            lease_expires_at=None,
        )


def _attempt_entry(
    error: Exception, failure: Failure, now: Any, duration: float, reason: str
) -> Attempt:
    detail: dict[str, JSON] = {"decision": reason}
    if isinstance(error, RetryAfter):
        detail["retry_after"] = error.seconds
    return Attempt(
        kind="attempt",
        at=now,
        error_type=failure.error_type,
        error_message=failure.message,
        duration=duration,
        detail=detail,
    )


def _note_interrupted(record: DeadLetter, now: datetime) -> DeadLetter:
    """Add a history entry for an attempt that ended with its worker: the claim counted it
    (``attempts``), but no outcome was ever written for it."""
    since_replay = 0
    for entry in reversed(record.history):
        if entry.kind == "replay":
            break
        if entry.kind in ("attempt", "interrupted"):
            since_replay += 1
    if record.attempts - 1 <= since_replay:
        return record
    entry = Attempt(
        kind="interrupted",
        at=now,
        error_type=error_name(WorkerLost()),
        error_message="the worker stopped before this attempt finished (crash, kill or OOM)",
    )
    return record.replace(history=(*record.history, entry))


def _replayed_by(record: DeadLetter) -> str:
    """Who scheduled the replay a record is now running for (its last replay entry)."""
    for entry in reversed(record.history):
        if entry.kind == "replay":
            return str(entry.detail.get("actor", "unknown"))
    return "unknown"
