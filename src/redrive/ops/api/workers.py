"""``/api/v1/workers``: is anything consuming? The schedulers' heartbeats, and the
handlers whose scheduled records are overdue with no live worker (stalled)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from redrive.models import format_time
from redrive.ops.api.context import Caller, viewer
from redrive.ops.api.problems import responses
from redrive.service import Stalled

router = APIRouter(prefix="/workers", tags=["workers"])


@router.get("", responses=responses(403))
def list_workers(caller: Caller = viewer) -> JSONResponse:
    """Every scheduler that writes a heartbeat (``live`` if it beat recently), and what
    is stalled for lack of a live worker."""
    service = caller.service
    items = service.workers()
    return JSONResponse(
        {
            "items": items,
            "next_cursor": None,
            "live": sum(1 for w in items if w.get("live")),
            "stalled": [stalled_dict(s) for s in service.stalled()],
        }
    )


def stalled_dict(item: Stalled) -> dict[str, Any]:
    """A stalled handler as JSON."""
    return {
        "topic": item.topic,
        "handler": item.handler,
        "scheduled": item.count,
        "oldest_due_at": format_time(item.oldest_due_at),
    }
