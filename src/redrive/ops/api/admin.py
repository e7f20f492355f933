"""Routes over the whole queue: stats, groups, timeline, audit, purge, export, tokens."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import JSONResponse

from redrive.models import Status, format_time
from redrive.ops.api import present
from redrive.ops.api.context import Caller, admin, viewer
from redrive.ops.api.filters import filter_query, parse_age, parse_when
from redrive.ops.api.problems import responses
from redrive.ops.api.schemas import (
    AuditPageOut,
    BulkOut,
    FilterIn,
    GroupOut,
    PurgeIn,
    StatsOut,
    TimelineOut,
    TokenCreatedOut,
    TokenIn,
    TokenOut,
)

router = APIRouter()


@router.get("/stats", response_model=StatsOut, responses=responses(403), tags=["queue"])
def get_stats(caller: Caller = viewer) -> JSONResponse:
    """Counts by status and topic, the oldest dead letter per topic, new dead letters."""
    return JSONResponse(present.stats(caller.service.stats()))


@router.get("/groups", response_model=list[GroupOut], responses=responses(403), tags=["queue"])
def get_groups(
    caller: Caller = viewer,
    filters: FilterIn = Depends(filter_query),  # noqa: B008
    limit: int = Query(50, ge=1, le=1000),
) -> JSONResponse:
    """Error groups (one per fingerprint), biggest first; dead letters unless ``status``."""
    where = caller.ctx.where(filters)
    if not where.statuses:
        where = where.replace(statuses=(Status.DEAD,))
    groups = caller.service.groups(where, limit=min(limit, caller.ctx.options.max_page))
    return JSONResponse([present.group(group) for group in groups])


@router.get("/timeline", response_model=list[TimelineOut], responses=responses(403), tags=["queue"])
def get_timeline(
    caller: Caller = viewer,
    since: str = Query("24h", max_length=32, description="How far back: 24h, 7d."),
    topic: str | None = Query(None, max_length=500),
) -> JSONResponse:
    """Records that became dead, per minute and topic."""
    now = caller.service.clock.now()
    start = parse_when(since, now, "since") or now
    points = caller.service.timeline(max(now - start, timedelta(0)), topic=topic)
    return JSONResponse(
        [{"minute": format_time(minute), "topic": name, "count": n} for minute, name, n in points]
    )


@router.get("/audit", response_model=AuditPageOut, responses=responses(403), tags=["queue"])
def get_audit(
    caller: Caller = viewer,
    limit: int = Query(50, ge=1, le=1000),
    cursor: str | None = Query(None, max_length=64),
) -> JSONResponse:
    """The audit trail, newest first: who changed what, with which selection."""
    limit = min(limit, caller.ctx.options.max_page)
    entries = caller.service.audit(limit=limit + 1, cursor=cursor)
    items = [present.audit(entry, caller.ctx.redactor) for entry in entries[:limit]]
    next_cursor = items[-1]["id"] if len(entries) > limit else None
    return JSONResponse({"items": items, "next_cursor": next_cursor})


@router.post("/purge", response_model=BulkOut, responses=responses(403), tags=["queue"])
def purge(body: PurgeIn, caller: Caller = admin) -> JSONResponse:
    """Delete records in ``status`` (default resolved, discarded) older than ``older_than``."""
    age = parse_age(body.older_than, "older_than")
    result = caller.service.purge(
        age, statuses=tuple(dict.fromkeys(body.status)), topic=body.topic, actor=caller.actor
    )
    return JSONResponse(
        {
            "matched": result.matched,
            "changed": result.changed,
            "skipped": result.skipped,
            "missing": 0,
            "dry_run": False,
        }
    )


@router.get("/tokens", response_model=list[TokenOut], responses=responses(403), tags=["tokens"])
def list_tokens(caller: Caller = admin) -> JSONResponse:
    """Every API token's name, role and creation time (never the secret)."""
    return JSONResponse([info.to_dict() for info in caller.ctx.tokens.list()])


@router.post(
    "/tokens",
    status_code=201,
    response_model=TokenCreatedOut,
    responses=responses(403),
    tags=["tokens"],
)
def create_token(body: TokenIn, caller: Caller = admin) -> JSONResponse:
    """Create a token; the response holds it once, only its hash is stored."""
    token, info = caller.ctx.tokens.create(body.name, body.role, actor=caller.actor)
    return JSONResponse({**info.to_dict(), "token": token}, status_code=201)


@router.delete(
    "/tokens/{name}",
    status_code=204,
    response_class=Response,
    responses=responses(403, 404),
    tags=["tokens"],
)
def revoke_token(name: str = Path(max_length=64), caller: Caller = admin) -> Response:
    """Revoke a token by name (its console sessions end too)."""
    caller.ctx.tokens.revoke(name, actor=caller.actor)
    return Response(status_code=204)
