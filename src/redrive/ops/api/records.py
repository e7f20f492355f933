"""Routes for one dead letter at a time, and the listing."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Body, Depends, Path, Query, Response
from fastapi.responses import JSONResponse

from redrive.models import DeadLetter
from redrive.ops.api import present
from redrive.ops.api.context import Caller, admin, operator, viewer
from redrive.ops.api.filters import filter_query
from redrive.ops.api.problems import Problem, responses
from redrive.ops.api.schemas import DeadLetterOut, FilterIn, NoteIn, PageOut, RetryIn, Sort
from redrive.service import Result

router = APIRouter(prefix="/dead-letters", tags=["dead letters"])

NoBody = Body(None)
CURSOR_LENGTH = 100
"""A cursor is an id, or a sort key and an id (``2026-01-02T03:04:05.000006Z~<id>``)."""
RecordId = Path(min_length=1, max_length=64, description="A dead letter's id.")


@router.get("", response_model=PageOut, responses=responses(403))
def list_dead_letters(
    caller: Caller = viewer,
    filters: FilterIn = Depends(filter_query),  # noqa: B008
    limit: int = Query(50, ge=1, le=10_000, description="Page size (capped by the server)."),
    cursor: str | None = Query(
        None, max_length=CURSOR_LENGTH, description="next_cursor of the last page (same sort)."
    ),
    sort: Sort = Query(  # noqa: B008
        Sort.NEWEST,
        description="created, dead (when it died) or attempts; - in front for descending.",
    ),
) -> JSONResponse:
    """Dead letters matching the filters, a page at a time: newest first, or in ``sort``
    order (ties by id). Keep the same ``sort`` when you pass a page's ``next_cursor``."""
    ctx = caller.ctx
    where = caller.ctx.where(filters)
    size = min(limit, ctx.options.max_page)
    page = caller.service.list(where, limit=size, cursor=cursor, sort=sort.value)
    items = [present.summary(record, ctx.redactor) for record in page.items]
    return JSONResponse({"items": items, "next_cursor": page.next_cursor})


@router.get("/{record_id}", response_model=DeadLetterOut, responses=responses(403, 404))
def get_dead_letter(record_id: str = RecordId, caller: Caller = viewer) -> JSONResponse:
    """One dead letter in full (payload and headers masked)."""
    record = caller.service.get(record_id)
    return JSONResponse(present.full(record, caller.ctx.redactor))


@router.post("/{record_id}/retry", response_model=DeadLetterOut, responses=responses(403, 404, 409))
def retry_dead_letter(
    record_id: str = RecordId, body: RetryIn | None = NoBody, caller: Caller = operator
) -> JSONResponse:
    """Schedule a dead letter for replay, optionally with a patched or new payload."""
    body = body or RetryIn()
    record = caller.service.get(record_id)
    patch = body.patch  # masked values sent back mean "keep": see redact.keep_masked
    report = caller.service.replay(
        [record.id],
        patch=patch,
        delay=timedelta(seconds=body.delay_seconds),
        actor=caller.actor,
        note=body.note,
    )
    result = Result(1, report.scheduled, report.skipped, report.missing)
    return _changed(caller, record, result, "retried", "only dead ones can")


@router.post(
    "/{record_id}/resolve", response_model=DeadLetterOut, responses=responses(403, 404, 409)
)
def resolve_dead_letter(
    record_id: str = RecordId, body: NoteIn | None = NoBody, caller: Caller = operator
) -> JSONResponse:
    """Mark a dead (or scheduled) record as handled by hand."""
    record = caller.service.get(record_id)
    note = body.note if body else None
    result = caller.service.resolve([record.id], actor=caller.actor, note=note)
    return _changed(caller, record, result, "resolved", "only dead or scheduled ones can")


@router.post(
    "/{record_id}/discard", response_model=DeadLetterOut, responses=responses(403, 404, 409)
)
def discard_dead_letter(
    record_id: str = RecordId, body: NoteIn | None = NoBody, caller: Caller = operator
) -> JSONResponse:
    """Mark a dead (or scheduled) record as not to be processed."""
    record = caller.service.get(record_id)
    note = body.note if body else None
    result = caller.service.discard([record.id], actor=caller.actor, note=note)
    return _changed(caller, record, result, "discarded", "only dead or scheduled ones can")


@router.delete(
    "/{record_id}", status_code=204, response_class=Response, responses=responses(403, 404)
)
def delete_dead_letter(record_id: str = RecordId, caller: Caller = admin) -> Response:
    """Delete a record for good (admins only)."""
    caller.service.get(record_id)  # 404 before anything is written (not even an audit entry)
    result = caller.service.delete([record_id], actor=caller.actor)
    if result.changed == 0:
        raise Problem(404, f"no dead letter with id {record_id!r}")
    return Response(status_code=204)


def _changed(
    caller: Caller, before: DeadLetter, result: Result, verb: str, rule: str
) -> JSONResponse:
    after = caller.service.get(before.id)
    if result.changed == 0:
        raise Problem(
            409,
            f"dead letter {before.id} is {after.status.value}, so it cannot be {verb}: {rule}",
            status_now=after.status.value,
        )
    return JSONResponse(present.full(after, caller.ctx.redactor))
