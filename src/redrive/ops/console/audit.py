"""The audit page: each entry as a sentence with linked ids, filtered by action, actor
and time."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from redrive.models import utcnow
from redrive.ops.api import present
from redrive.ops.api.filters import parse_when
from redrive.ops.api.problems import Problem
from redrive.ops.console.web import current, render
from redrive.service import AuditQuery

router = APIRouter(include_in_schema=False)

PAGE = 50
VERBS = {
    "retry": "replayed",
    "resolve": "resolved",
    "discard": "discarded",
    "delete": "deleted",
    "purge": "purged",
    "export": "exported",
    "import": "imported",
    "archive": "archived",
}
ACTIONS = ("retry", "resolve", "discard", "delete", "purge", "export", "import", "archive")
SHOWN_IDS = 10


@router.get("/audit")
def audit(
    request: Request,
    action: str = Query("", max_length=40),
    actor: str = Query("", max_length=200),
    since: str = Query("", max_length=64),
    cursor: str | None = Query(None, max_length=64),
) -> HTMLResponse:
    """The audit trail: who did what, to which records, when."""
    ctx, session = current(request)
    error = None
    try:
        start = parse_when(since, utcnow(), "since")
    except Problem as exc:
        error, start = exc.detail, None
    query = AuditQuery(action=action or None, actor=actor or None, since=start)
    entries, next_cursor = ctx.service.audit_page(query, limit=PAGE, cursor=cursor)
    items = [sentence(present.audit(entry, ctx.redactor)) for entry in entries]
    form = {"action": action, "actor": actor, "since": since}
    return render(
        request,
        "audit.html",
        session,
        items=items,
        next_cursor=next_cursor,
        cursor=cursor,
        form=form,
        actions=ACTIONS,
        error=error,
        query="&".join(f"{k}={v}" for k, v in form.items() if v),
    )


def sentence(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry with ``text`` (``alice replayed 12 dead letters of group d1a6…``), the
    ``ids`` to link and the ``group`` to link."""
    detail = entry["detail"] if isinstance(entry["detail"], dict) else {}
    action, count = str(entry["action"]), int(entry["count"] or 0)
    where = detail.get("filter") if isinstance(detail.get("filter"), dict) else {}
    assert isinstance(where, dict)
    noun = f"{count:,} record{'' if count == 1 else 's'}"
    if action.startswith("token."):
        verb = "created" if action == "token.create" else "revoked"
        text = f"{verb} the token {detail.get('name')!r} ({detail.get('role')})"
    elif action in VERBS:
        text = f"{VERBS[action]} {noun}"
        if where.get("topic"):
            text += f" of topic {where['topic']}"
        if detail.get("skipped"):
            text += f" ({detail['skipped']:,} skipped)"
        if detail.get("file"):
            text += f" ({'to' if action != 'import' else 'from'} {detail['file']})"
        if detail.get("aborted"):
            text += f"; stopped: {detail['aborted']}"
    else:
        text = f"did {action} on {noun}"
    ids = detail.get("ids") if isinstance(detail.get("ids"), list) else []
    assert isinstance(ids, list)
    return {
        **entry,
        "text": text,
        "note": detail.get("note"),
        "group": where.get("fingerprint"),
        "ids": [str(i) for i in ids[:SHOWN_IDS]],
        "more_ids": max(len(ids) - SHOWN_IDS, 0),
    }
