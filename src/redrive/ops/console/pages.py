"""The console's pages: overview, dead letters (table and detail), groups, audit, sign-in."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from redrive.exceptions import InvalidInput, NotFound
from redrive.models import Status
from redrive.ops.api import present
from redrive.ops.api.problems import Problem
from redrive.ops.console import chart, lists
from redrive.ops.console.replays import filter_in
from redrive.ops.console.web import (
    SIGNIN_COOKIE,
    actions_for,
    base_path,
    cookie_path,
    current,
    new_signin_value,
    render,
)
from redrive.stores.base import DEFAULT_SORT

router = APIRouter(include_in_schema=False)

PAGE = 50
STATUSES = [status.value for status in Status]
STATUS_PATTERN = f"^({'|'.join(STATUSES)})$"


@router.get("/signin")
def signin_page(request: Request, next: str | None = Query(None, max_length=2000)) -> HTMLResponse:
    """The sign-in form (a double-submit cookie guards it against CSRF)."""
    value = new_signin_value()
    response = render(request, "signin.html", None, csrf=value, next=next or "", error=None)
    response.set_cookie(
        SIGNIN_COOKIE,
        value,
        max_age=3600,
        httponly=True,
        samesite="strict",
        path=cookie_path(request),
    )
    return response


@router.get("/")
def overview(request: Request, range: str = Query("24h", pattern="^(24h|7d)$")) -> HTMLResponse:
    """Counts per topic and status, dead letters over time, top groups, oldest per topic."""
    ctx, session = current(request)
    service = ctx.service
    stats = present.stats(service.stats())
    span = chart.RANGES[range][0]
    drawing = chart.build(service.timeline(span), service.clock.now(), range)
    groups = [present.group(g) for g in service.groups(limit=5)]
    workers = service.workers()
    return render(
        request,
        "overview.html",
        session,
        workers=workers,
        live=[w for w in workers if w.get("live")],
        stalled=service.stalled(),
        stats=stats,
        chart=drawing,
        range=range,
        groups=groups,
        statuses=STATUSES,
    )


@router.get("/dead-letters")
def dead_letters(
    request: Request,
    status: str = Query("dead", max_length=20),
    topic: str | None = Query(None, max_length=500),
    handler: str | None = Query(None, max_length=500),
    error_type: str | None = Query(None, max_length=500),
    group: str | None = Query(None, max_length=500),
    q: str | None = Query(None, max_length=500),
    since: str | None = Query(None, max_length=64),
    correlation_id: str | None = Query(None, max_length=500),
    event_id: str | None = Query(None, max_length=500),
    key: str | None = Query(None, max_length=500),
    cursor: str | None = Query(None, max_length=100),
    trail: str = Query("", max_length=12000),
    sort: str = Query(DEFAULT_SORT, max_length=20),
    page_number: int | None = Query(None, alias="page", ge=1, le=10**9),
) -> HTMLResponse:
    """The filterable, searchable, paginated table with bulk actions (dead letters unless
    the status filter says otherwise; ``any`` for every status), newest first or in the
    order a column header picks."""
    ctx, session = current(request)
    known = lists.known_values(ctx.service)
    error_type = lists.match_case(error_type, known["error_types"])
    form = {
        "status": status or "dead",
        "topic": topic or "",
        "handler": handler or "",
        "error_type": error_type or "",
        "group": group or "",
        "q": q or "",
        "since": since or "",
        "correlation_id": correlation_id or "",
        "event_id": event_id or "",
        "key": key or "",
    }
    error, total = None, 0
    try:
        where = ctx.where(filter_in(form)).replace(event_id=event_id or None, key=key or None)
        page = ctx.service.list(where, limit=PAGE, cursor=cursor, sort=sort)
        rows = [present.summary(r, ctx.redactor) for r in page.items]
        next_cursor = page.next_cursor
        total = ctx.service.count(where)
    except (ValueError, Problem, InvalidInput) as exc:
        if isinstance(exc, Problem):
            error = exc.detail
        elif isinstance(exc, InvalidInput):
            error = str(exc)
        else:
            error = f"status: unknown status {status!r}"
        rows, next_cursor = [], None
    query = urlencode({k: v for k, v in form.items() if v and (k, v) != ("status", "dead")})
    sorting = lists.sorting(query, sort)
    return render(
        request,
        "list.html",
        session,
        rows=rows,
        form=form,
        statuses=STATUSES,
        known=known,
        total=total,
        pages=lists.pager(cursor, next_cursor, trail, total, PAGE, page_number),
        query=query,
        listing=sorting["listing"],
        sorting=sorting,
        error=error,
        payload_search=not ctx.redactor,
        can_act=session.token.role != "viewer",
    )


@router.get("/dead-letters/jump")
def jump(request: Request, to: str = Query("", max_length=500)) -> Response:
    """Go straight to a record by its id, event id, key or correlation id."""
    ctx, session = current(request)
    target = lists.find(ctx.service, to.strip())
    base = base_path(request)
    if target is None:
        message = f"No record has the id, event id, key or correlation id {to.strip()!r}."
        return render(
            request, "error.html", session, status=404, title="Not found", message=message
        )
    kind, value = target
    if kind == "record":
        return RedirectResponse(f"{base}/dead-letters/{quote(value)}", status_code=303)
    return RedirectResponse(
        f"{base}/dead-letters?{urlencode({'status': 'any', kind: value})}", status_code=303
    )


@router.get("/dead-letters/{record_id}")
def detail(request: Request, record_id: str = Path(max_length=64)) -> HTMLResponse:
    """One record: masked payload, headers, origin, traceback, timeline and actions."""
    ctx, session = current(request)
    try:
        record = ctx.service.get(record_id)
    except NotFound as exc:
        return render(
            request, "error.html", session, status=404, title="Not found", message=str(exc)
        )
    data = present.full(record, ctx.redactor)
    return render(
        request,
        "detail.html",
        session,
        record=data,
        actions=actions_for(record.status, session.token.role),
        all_actions=("retry", "resolve", "discard", "delete"),
    )


@router.get("/groups")
def groups(request: Request, status: str = Query("dead", pattern=STATUS_PATTERN)) -> HTMLResponse:
    """Error groups, biggest first, each with a link to its records and a replay button."""
    ctx, session = current(request)
    items = [present.group(g) for g in ctx.service.groups(limit=200, status=status)]
    return render(
        request,
        "groups.html",
        session,
        groups=items,
        shown=status,
        statuses=STATUSES,
        can_act=session.token.role != "viewer",
    )
