"""Temporary: the engine seam (run/decide/failure_record/record/succeeded) until main has it."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping

from redrive.core.engine import Engine, HandlerSpec
from redrive.models import JSON, DeadLetter, Event, Status
from redrive.policy import Decision


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    spec: HandlerSpec
    error: Exception | None
    duration: float


async def run(engine: Engine, spec: HandlerSpec, event: Event) -> Outcome:
    start = time.perf_counter()
    try:
        await engine._invoke(spec, event)
    except Exception as error:
        return Outcome(spec, error, time.perf_counter() - start)
    return Outcome(spec, None, time.perf_counter() - start)


def decide(engine: Engine, spec: HandlerSpec, error: BaseException, attempt: int) -> Decision:
    return spec.policy.decide(attempt, error, engine.clock.now(), engine._rand)


def failure_record(
    engine: Engine,
    event: Event,
    outcome: Outcome,
    *,
    attempt: int = 1,
    decision: Decision | None = None,
    origin: Mapping[str, JSON] | None = None,
) -> DeadLetter:
    assert outcome.error is not None
    record = engine._new_record(event, outcome.spec, outcome.error, outcome.duration, origin or {})
    if decision is not None:
        entry = record.history[-1]
        entry = dataclasses.replace(entry, detail={**entry.detail, "decision": decision.reason})
        record = record.replace(
            history=(entry,),
            attempts=attempt,
            status=Status.DEAD if decision.dead else Status.SCHEDULED,
            next_attempt_at=decision.retry_at,
            dead_at=record.created_at if decision.dead else None,
        )
    return record


async def record(engine: Engine, record: DeadLetter, outcome: Outcome) -> DeadLetter:
    await engine.writer.write(record)
    assert outcome.error is not None
    engine._after_failure(record, outcome.error, outcome.duration)
    return record


def succeeded(engine: Engine, event: Event, outcome: Outcome) -> None:
    if engine.hooks:
        engine.hooks.on_success(event, outcome.spec.name, outcome.duration, None)
