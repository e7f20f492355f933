"""Replay runs over HTTP: plan, start, follow and stop a replay of everything a filter
matches. The runs live in the store (``redrive.service.runs``), so the CLI's
``redrive replays`` and the console see and stop the same ones."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import Field

from redrive.models import Status
from redrive.ops.api.context import Caller, operator, viewer
from redrive.ops.api.problems import responses
from redrive.ops.api.schemas import FilterIn, _In
from redrive.service import Filter, ReplayOptions, ReplayPlan, filter_to_dict
from redrive.service.runs import ReplayRuns

router = APIRouter(prefix="/replays", tags=["replays"])

RunId = Path(min_length=1, max_length=64, description="A replay run's id.")


class ReplayRunIn(_In):
    """A replay of every dead letter ``filter`` matches (``status`` defaults to dead)."""

    filter: FilterIn = Field(default_factory=FilterIn)
    upto: str | None = Field(
        default=None, max_length=64, description="The plan's bound: replay ids up to this one."
    )
    rate: float | None = Field(default=None, ge=0.001, le=1_000_000, description="Records/s.")
    canary: int = Field(
        default=0, ge=0, le=100_000, description="Replay these first; go on if all succeed."
    )
    abort_on_failure_rate: float | None = Field(
        default=None, ge=0, le=1, description="Stop when more than this share fails again."
    )
    force: bool = Field(default=False, description="Also replay records at max_replays.")
    note: str | None = Field(default=None, max_length=1000)
    dry_run: bool = Field(default=False, description="Answer the plan; replay nothing.")


@router.get("", responses=responses(403))
def list_runs(caller: Caller = viewer) -> JSONResponse:
    """Every kept replay run, newest first."""
    return JSONResponse({"items": ReplayRuns(caller.service).list(), "next_cursor": None})


PLANNED: dict[int | str, dict[str, Any]] = {
    200: {"description": "The plan: dry_run, or nothing to replay (no run is started)."}
}


@router.post("", status_code=202, responses={**responses(403), **PLANNED})
def start_run(body: ReplayRunIn, caller: Caller = operator) -> JSONResponse:
    """Plan (``dry_run``) or start a replay run; it runs in this server and can be
    followed and stopped through ``/replays/{id}``. When nothing matches, the answer is
    the (empty) plan and no run starts."""
    where = selection(caller, body.filter, body.upto)
    plan = caller.service.plan(where, force=body.force)
    if body.dry_run or plan.count == 0:
        return JSONResponse({**plan_dict(plan), "run": None}, status_code=200)
    options = ReplayOptions(
        rate=body.rate, canary=body.canary, abort_on_failure_rate=body.abort_on_failure_rate
    )
    runs = ReplayRuns(caller.service)
    run = runs.start(plan, options, actor=caller.actor, note=body.note, force=body.force)
    return JSONResponse(run, status_code=202)


@router.get("/{run_id}", responses=responses(403, 404))
def get_run(run_id: str = RunId, caller: Caller = viewer) -> JSONResponse:
    """One replay run: its state and progress (done, failed again, left)."""
    return JSONResponse(ReplayRuns(caller.service).get(run_id))


@router.post("/{run_id}/stop", responses=responses(403, 404, 409))
def stop_run(run_id: str = RunId, caller: Caller = operator) -> JSONResponse:
    """Stop a running replay after the wave in progress; the rest stay dead."""
    return JSONResponse(ReplayRuns(caller.service).stop(run_id, actor=caller.actor))


def selection(caller: Caller, data: FilterIn, upto: str | None) -> Filter:
    """The store filter of a replay: dead letters unless the filter says otherwise."""
    where = caller.ctx.where(data)
    if not where.statuses:
        where = where.replace(statuses=(Status.DEAD,))
    return where.replace(max_id=upto) if upto else where


def plan_dict(plan: ReplayPlan) -> dict[str, Any]:
    """The plan as JSON: what ``redrive retry --dry-run --json`` prints."""
    return {
        "count": plan.count,
        "by_topic": dict(plan.by_topic),
        "left_out": plan.guarded,
        "groups": [
            {
                "fingerprint": g.fingerprint,
                "topic": g.topic,
                "handler": g.handler,
                "count": g.count,
                "error_type": g.error_type,
                "sample_message": g.sample_message,
            }
            for g in plan.groups
        ],
        "samples": [r.id for r in plan.samples],
        "filter": filter_to_dict(plan.where),
        "upto": plan.where.max_id or None,
    }
