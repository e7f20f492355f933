"""Bulk actions: retry, resolve or discard many records by ids or by filter.

A filter is bounded to the records that exist when the request arrives (the service's
snapshot), so a bulk action never touches records that fail while it runs. ``dry_run``
counts without changing anything. ``rate`` paces a replay without holding the request
open: the records are scheduled in slices, each slice due later than the one before, and
the scheduler runs them as they come due.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from redrive._batch import chunks
from redrive.models import Status
from redrive.ops.api.context import Caller, operator
from redrive.ops.api.problems import Problem, responses
from redrive.ops.api.schemas import BulkIn, BulkOut, RetryBulkIn
from redrive.service import RESOLVABLE, Result
from redrive.stores.base import Filter

if TYPE_CHECKING:
    from redrive.service.replay import ReplayReport

router = APIRouter(prefix="/dead-letters", tags=["bulk"])

MAX_SLICES = 100
"""A paced replay is cut into at most this many slices (one audit entry each)."""

MAX_PACED_SECONDS = 366 * 86400.0
"""The last slice of a paced replay is due at most this far out (about a year)."""


@router.post("/retry", response_model=BulkOut, responses=responses(403))
def retry_many(body: RetryBulkIn, caller: Caller = operator) -> JSONResponse:
    """Schedule many dead letters for replay (records that are not dead are skipped)."""
    ids, where = _selection(caller, body)
    if body.dry_run:
        return _out(_plan(caller, ids, where, (Status.DEAD,), body.force), dry_run=True)
    delay = timedelta(seconds=body.delay_seconds)
    if body.rate is not None:
        return _out(_paced(caller, ids, where, body, delay), dry_run=False)
    if body.patch is not None:
        return _out(_replay(caller, ids, where, body, delay, body.note), dry_run=False)
    result = caller.service.retry(
        ids, where=where, delay=delay, force=body.force, actor=caller.actor, note=body.note
    )
    return _out(result, dry_run=False)


@router.post("/resolve", response_model=BulkOut, responses=responses(403))
def resolve_many(body: BulkIn, caller: Caller = operator) -> JSONResponse:
    """Mark many dead or scheduled records as handled by hand."""
    ids, where = _selection(caller, body)
    if body.dry_run:
        return _out(_plan(caller, ids, where, RESOLVABLE, True), dry_run=True)
    result = caller.service.resolve(ids, where=where, actor=caller.actor, note=body.note)
    return _out(result, dry_run=False)


@router.post("/discard", response_model=BulkOut, responses=responses(403))
def discard_many(body: BulkIn, caller: Caller = operator) -> JSONResponse:
    """Mark many dead or scheduled records as not to be processed."""
    ids, where = _selection(caller, body)
    if body.dry_run:
        return _out(_plan(caller, ids, where, RESOLVABLE, True), dry_run=True)
    result = caller.service.discard(ids, where=where, actor=caller.actor, note=body.note)
    return _out(result, dry_run=False)


def _selection(caller: Caller, body: BulkIn) -> tuple[list[str] | None, Filter | None]:
    if body.ids is not None:
        limit = caller.ctx.options.max_bulk_ids
        if len(body.ids) > limit:
            raise Problem(422, f"ids: at most {limit} ids per request; use a filter for more")
        return list(dict.fromkeys(body.ids)), None
    assert body.filter is not None
    where = caller.ctx.where(body.filter)
    if not where.statuses:  # the same default as the CLI and the console: dead letters
        where = where.replace(statuses=(Status.DEAD,))
    return None, caller.service.snapshot(where)


def _plan(
    caller: Caller,
    ids: list[str] | None,
    where: Filter | None,
    allowed: tuple[Status, ...],
    force: bool,
) -> Result:
    """What the action would do: matched, of which changeable, and missing ids."""
    service = caller.service
    if ids is not None:
        matched = changeable = 0
        for part in chunks(ids):
            chunk = tuple(part)
            matched += service.count(Filter(ids=chunk))
            changeable += service.count(Filter(ids=chunk, statuses=allowed))
        return Result(matched, changeable, matched - changeable, len(ids) - matched)
    assert where is not None
    matched = service.count(where)
    statuses = tuple(s for s in allowed if not where.statuses or s in where.statuses)
    target = where.replace(statuses=statuses)
    if not force:
        target = target.replace(max_replays=service.max_replays)
    changeable = service.count(target) if statuses else 0
    return Result(matched, changeable, matched - changeable)


def _paced(
    caller: Caller,
    ids: list[str] | None,
    where: Filter | None,
    body: RetryBulkIn,
    delay: timedelta,
) -> Result:
    service, rate = caller.service, body.rate or 1.0
    if where is not None and not body.force:
        where = where.replace(max_replays=service.max_replays)
    total = len(ids) if ids is not None else service.count(where)
    size = max(math.ceil(rate), math.ceil(total / MAX_SLICES), 1)
    span = delay.total_seconds() + (math.ceil(total / size) - 1) * size / rate
    if span > MAX_PACED_SECONDS:  # refused before any record changes
        days = span / 86400
        raise Problem(
            422,
            f"rate: at {rate:g}/s the last of {total:,} records would be due in "
            f"{days:,.0f} days (at most 366); use a higher rate",
        )
    batches = (
        (list(part) for part in chunks(ids, size))
        if ids is not None
        else service.iter_ids(where or Filter(), batch=size)
    )
    result = Result(0, 0, 0)
    note = f"{body.note + '; ' if body.note else ''}paced at {rate:g}/s"
    for number, batch in enumerate(batches):
        # Capped, so that records added after the count cannot push a slice out of range.
        offset = min(number * size / rate, MAX_PACED_SECONDS)
        slice_delay = delay + timedelta(seconds=offset)
        result += _replay(caller, batch, None, body, slice_delay, note)
    return result


def _replay(
    caller: Caller,
    ids: list[str] | None,
    where: Filter | None,
    body: RetryBulkIn,
    delay: timedelta,
    note: str | None,
) -> Result:
    """``service.replay`` (it applies the patch and keeps each original in the history)."""
    if ids is not None and caller.service.count(Filter(ids=tuple(ids))) == 0:
        # Nothing to replay; the service's patch path needs at least one existing id.
        return Result(0, 0, 0, len(ids))
    report = caller.service.replay(
        ids,
        where=where,
        patch=body.patch,
        force=body.force,
        delay=delay,
        actor=caller.actor,
        note=note,
    )
    return _result(report, len(ids) - report.missing if ids is not None else None)


def _result(report: ReplayReport, matched: int | None = None) -> Result:
    if matched is None:
        matched = report.scheduled + report.skipped + report.remaining
    return Result(matched, report.scheduled, report.skipped, report.missing)


def _out(result: Result, *, dry_run: bool) -> JSONResponse:
    return JSONResponse(
        {
            "matched": result.matched,
            "changed": result.changed,
            "skipped": result.skipped,
            "missing": result.missing,
            "dry_run": dry_run,
        }
    )
