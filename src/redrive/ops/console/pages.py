"""The console's pages: overview, dead letters (table and detail), groups, audit, sign-in."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse

from redrive.exceptions import InvalidInput, NotFound
from redrive.models import Status
from redrive.ops.api import present
from redrive.ops.api.problems import Problem
from redrive.ops.api.schemas import FilterIn
from redrive.ops.console import chart
from redrive.ops.console.web import (
    SIGNIN_COOKIE,
    actions_for,
    cookie_path,
    current,
    new_signin_value,
    render,
)

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
    return render(
        request,
        "overview.html",
        session,
        stats=stats,
        chart=drawing,
        range=range,
        groups=groups,
        statuses=STATUSES,
    )


@router.get("/dead-letters")
def dead_letters(
    request: Request,
    status: str | None = Query(None, max_length=20),
    topic: str | None = Query(None, max_length=500),
    handler: str | None = Query(None, max_length=500),
    error_type: str | None = Query(None, max_length=500),
    group: str | None = Query(None, max_length=500),
    q: str | None = Query(None, max_length=500),
    since: str | None = Query(None, max_length=64),
    cursor: str | None = Query(None, max_length=64),
) -> HTMLResponse:
    """The filterable, searchable, paginated table with bulk actions."""
    ctx, session = current(request)
    form = {
        "status": status or "",
        "topic": topic or "",
        "handler": handler or "",
        "error_type": error_type or "",
        "group": group or "",
        "q": q or "",
        "since": since or "",
    }
    error = None
    try:
        chosen = [Status(status)] if status else None
        data = FilterIn(
            status=chosen,
            topic=topic,
            handler=handler,
            error_type=error_type,
            group=group,
            q=q,
            since=since,
        )
        page = ctx.service.list(ctx.where(data), limit=PAGE, cursor=cursor)
        rows = [present.summary(r, ctx.redactor) for r in page.items]
        next_cursor = page.next_cursor
    except (ValueError, Problem, InvalidInput) as exc:
        if isinstance(exc, Problem):
            error = exc.detail
        elif isinstance(exc, InvalidInput):
            error = str(exc)
        else:
            error = f"status: unknown status {status!r}"
        rows, next_cursor = [], None
    query = urlencode({k: v for k, v in form.items() if v})
    return render(
        request,
        "list.html",
        session,
        rows=rows,
        form=form,
        statuses=STATUSES,
        next_cursor=next_cursor,
        cursor=cursor,
        query=query,
        error=error,
        can_act=session.token.role != "viewer",
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


@router.get("/audit")
def audit(request: Request, cursor: str | None = Query(None, max_length=64)) -> HTMLResponse:
    """The audit trail: who did what, to how many records."""
    ctx, session = current(request)
    entries = ctx.service.audit(limit=PAGE + 1, cursor=cursor)
    items = [present.audit(entry, ctx.redactor) for entry in entries[:PAGE]]
    next_cursor = items[-1]["id"] if len(entries) > PAGE else None
    return render(
        request, "audit.html", session, items=items, next_cursor=next_cursor, cursor=cursor
    )
