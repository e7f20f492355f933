"""The engine seam the consumer needs (run, decide, failure_record, record, succeeded).

Main's ``Engine`` grows these methods (issue 9); until a checkout has them, the same steps
are composed here from what the engine already offers. Once main has them, this module is a
thin pass-through.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from redrive.core.engine import Engine, HandlerSpec
from redrive.models import JSON, DeadLetter, Event, Status
from redrive.policy import Decision


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """One run of one handler: ``error`` is None on success."""

    spec: HandlerSpec
    error: Exception | None
    duration: float


async def run(engine: Engine, spec: HandlerSpec, event: Event) -> Any:
    """Run ``spec`` for ``event``; never raises the handler's error."""
    native = getattr(engine, "run", None)
    if native is not None:
        return await native(spec, event)
    start = time.perf_counter()
    try:
        await engine._invoke(spec, event)
    except Exception as error:
        return Outcome(spec, error, time.perf_counter() - start)
    return Outcome(spec, None, time.perf_counter() - start)


def decide(engine: Engine, spec: HandlerSpec, error: BaseException, attempt: int) -> Decision:
    """The policy's decision after failed attempt ``attempt``, at the engine's now."""
    native = getattr(engine, "decide", None)
    if native is not None:
        decision: Decision = native(spec, error, attempt)
        return decision
    return spec.policy.decide(attempt, error, engine.clock.now(), engine._rand)


def failure_record(
    engine: Engine,
    event: Event,
    outcome: Any,
    *,
    attempt: int,
    decision: Decision,
    origin: Mapping[str, JSON],
) -> DeadLetter:
    """The record of a failed run, at ``attempt``, as ``decision`` says."""
    native = getattr(engine, "failure_record", None)
    if native is not None:
        record: DeadLetter = native(
            event, outcome, attempt=attempt, decision=decision, origin=origin
        )
        return record
    record = engine._new_record(event, outcome.spec, outcome.error, outcome.duration, origin)
    entry = dataclasses.replace(record.history[-1], detail={"decision": decision.reason})
    now = record.created_at
    return record.replace(
        attempts=attempt,
        status=Status.DEAD if decision.dead else Status.SCHEDULED,
        next_attempt_at=decision.retry_at,
        dead_at=now if decision.dead else None,
        history=(entry,),
    )


async def record(engine: Engine, failure: DeadLetter, outcome: Any) -> DeadLetter:
    """Write ``failure`` durably (idempotent while open) and fire the hooks."""
    native = getattr(engine, "record", None)
    if native is not None:
        stored: DeadLetter = await native(failure, outcome)
        return stored
    await engine.writer.write(failure)
    engine._after_failure(failure, outcome.error, outcome.duration)
    return failure


def succeeded(engine: Engine, event: Event, outcome: Any) -> None:
    """Fire ``on_success`` for a run that succeeded."""
    native = getattr(engine, "succeeded", None)
    if native is not None:
        native(event, outcome)
    elif engine.hooks:
        engine.hooks.on_success(event, outcome.spec.name, outcome.duration, None)


def outcome(spec: HandlerSpec, error: Exception | None, duration: float = 0.0) -> Any:
    """An outcome for a handler that did not run (an undecodable body, a lost worker)."""
    try:
        from redrive.core.engine import Outcome as Native  # type: ignore[attr-defined]  # main's seam
    except ImportError:
        return Outcome(spec, error, duration)
    return Native(spec, error, duration)
