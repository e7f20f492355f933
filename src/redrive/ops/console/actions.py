"""The console's forms: sign in and out, actions on one record, bulk actions, group replay.

Every form carries the session's CSRF value (the sign-in form a double-submit cookie).
Actions on one record answer JSON when the page's script asks (``Accept:
application/json``), so the detail page shows the new status without a reload; without
the script they redirect back with a flash message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from redrive._json import NotJSON, check_text, loads
from redrive.exceptions import InvalidInput, NotFound
from redrive.models import Status
from redrive.ops.api import present
from redrive.ops.api.context import get_context
from redrive.ops.auth import Role, same
from redrive.ops.console.web import (
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    actions_for,
    base_path,
    check,
    cookie_path,
    current,
    new_signin_value,
    render,
    safe_next,
    set_flash,
)
from redrive.service import Result
from redrive.stores.base import Filter

router = APIRouter(include_in_schema=False)

SelectedIds = Form([], max_length=1000)

VERBS = {
    "retry": "scheduled for replay",
    "resolve": "resolved",
    "discard": "discarded",
    "delete": "deleted",
}


@router.post("/signin", response_model=None)
def signin(
    request: Request,
    token: str = Form("", max_length=200),
    csrf: str = Form("", max_length=100),
    next: str = Form("", max_length=2000),
) -> Response:
    """Check the token and start a session (HttpOnly, SameSite=Strict cookie)."""
    ctx = get_context(request)
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    error = None
    info = None
    if not expected or not same(csrf, expected):
        error = "The sign-in form expired; please try again."
    else:
        info = ctx.tokens.check(token.strip())
        if info is None:
            error = "That token is not valid (or was revoked)."
    if info is None:
        value = new_signin_value()
        response = render(
            request, "signin.html", None, status=401, csrf=value, next=next, error=error
        )
        response.set_cookie(
            SIGNIN_COOKIE,
            value,
            max_age=3600,
            httponly=True,
            samesite="strict",
            path=cookie_path(request),
        )
        return response
    cookie, _ = ctx.sessions.start(info)
    redirect = RedirectResponse(safe_next(request, next), status_code=303)
    redirect.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=ctx.options.session_hours * 3600,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=cookie_path(request),
    )
    redirect.delete_cookie(SIGNIN_COOKIE, path=cookie_path(request))
    return redirect


@router.post("/signout")
def signout(request: Request, csrf: str = Form("", max_length=100)) -> RedirectResponse:
    """End the session."""
    ctx, session = current(request)
    check(session, csrf)
    ctx.sessions.end(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse(f"{base_path(request)}/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=cookie_path(request))
    return response


@router.post("/dead-letters/{record_id}/action", response_model=None)
def act(
    request: Request,
    record_id: str = Path(max_length=64),
    csrf: str = Form("", max_length=100),
    action: str = Form(..., pattern="^(retry|resolve|discard|delete)$"),
    payload: str | None = Form(None, max_length=1_000_000),
    note: str | None = Form(None, max_length=1000),
) -> Response:
    """Retry (optionally with an edited payload), resolve, discard or delete one record."""
    ctx, session = current(request)
    check(session, csrf, Role.ADMIN if action == "delete" else Role.OPERATOR)
    service, actor = ctx.service, session.token.name
    try:
        check_text(note or "", "The note")
        record = service.get(record_id)
    except NotFound as exc:
        return _answer(request, record_id, False, str(exc), status=404)
    except NotJSON as exc:
        return _answer(request, record_id, False, f"{exc}.", status=422)
    note = note or None
    patch: Any = None
    if action == "delete":
        service.delete([record.id], actor=actor, note=note)
        return _answer(request, record.id, True, "Deleted.", deleted=True)
    if action == "retry":
        if payload is not None and payload.strip():
            try:  # NaN, Infinity, lone surrogates, NULs and deep nesting are refused too
                edited = loads(payload, "The payload")
            except NotJSON as exc:
                return _answer(request, record.id, False, f"{exc}.", status=422)
            # Masked values left as they were mean "keep" (redact.keep_masked).
            patch = present.diff_patch(record.payload, edited)
        try:
            report = service.replay([record.id], patch=patch or None, actor=actor, note=note)
        except InvalidInput as exc:
            return _answer(request, record.id, False, str(exc), status=422)
        changed = report.scheduled
    else:
        method = service.resolve if action == "resolve" else service.discard
        changed = method([record.id], actor=actor, note=note).changed
    after = service.get(record.id)
    if not changed:
        message = f"Not {VERBS[action]}: the record is {after.status.value}."
        return _answer(request, record.id, False, message, status=409, record=after)
    message = f"The record was {VERBS[action]}."
    if action == "retry" and patch:
        shown = present.full(record, ctx.redactor)["payload"]
        message = (
            "The record was scheduled for replay with an edited payload "
            f"(changed: {_changed(shown, json.loads(payload or 'null'))})."
        )
    if action == "retry":
        message += _worker_note(service, after)
    return _answer(request, record.id, True, message, record=after)


def _worker_note(service: Any, record: Any) -> str:
    """Say so when no live worker runs the record's handler: nothing will replay it."""
    if f"{record.topic}/{record.handler}" in service.live_handlers():
        return ""
    return (
        f" No live worker runs {record.handler} now: it runs once the app or "
        "`redrive worker` is up."
    )


@router.post("/bulk")
def bulk(
    request: Request,
    csrf: str = Form("", max_length=100),
    action: str = Form(..., pattern="^(retry|resolve|discard)$"),
    ids: list[str] = SelectedIds,
    back: str = Form("", max_length=4000),
) -> RedirectResponse:
    """Retry, resolve or discard the selected records."""
    ctx, session = current(request)
    check(session, csrf, Role.OPERATOR)
    service, actor = ctx.service, session.token.name
    try:
        for value in ids:
            check_text(value, "A selected id")
    except NotJSON as exc:
        response = RedirectResponse(safe_next(request, back), status_code=303)
        set_flash(request, response, f"{exc}.")
        return response
    method: dict[str, Callable[..., Result]] = {
        "retry": service.retry,
        "resolve": service.resolve,
        "discard": service.discard,
    }
    result = method[action](ids, actor=actor) if ids else None
    response = RedirectResponse(safe_next(request, back), status_code=303)
    if result is None:
        set_flash(request, response, "Select at least one record first.")
    else:
        set_flash(
            request,
            response,
            f"{result.changed} of {result.matched} records "
            f"{VERBS[action]}; {result.skipped} skipped.",
        )
    return response


@router.post("/groups/{action}")
def group_action(
    request: Request,
    action: str = Path(pattern="^(retry|resolve|discard)$"),
    csrf: str = Form("", max_length=100),
    fingerprint: str = Form(..., max_length=500),
) -> RedirectResponse:
    """Replay (the loop guard applies), resolve or discard every dead letter of a group."""
    ctx, session = current(request)
    check(session, csrf, Role.OPERATOR)
    response = RedirectResponse(f"{base_path(request)}/groups", status_code=303)
    try:
        check_text(fingerprint, "The group")
    except NotJSON as exc:
        set_flash(request, response, f"{exc}.")
        return response
    where = Filter(fingerprint=fingerprint, statuses=(Status.DEAD,))
    method: dict[str, Callable[..., Result]] = {
        "retry": ctx.service.retry,
        "resolve": ctx.service.resolve,
        "discard": ctx.service.discard,
    }
    result = method[action](where=where, actor=session.token.name)
    set_flash(
        request,
        response,
        f"{result.changed:,} records of the group {VERBS[action]}; {result.skipped:,} skipped.",
    )
    return response


def _changed(shown: Any, edited: Any) -> str:
    """The top-level fields an operator edited (as they saw the payload: masked)."""
    if not (isinstance(shown, dict) and isinstance(edited, dict)):
        return "the whole payload"
    keys = sorted(k for k in {*shown, *edited} if shown.get(k) != edited.get(k))
    return ", ".join(keys) or "nothing"


def denied_response(request: Request, exc: Exception) -> Response:
    """A 403 for a wrong CSRF value or a role that is too low: JSON or a page."""
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"ok": False, "message": str(exc)}, status_code=403)
    ctx = get_context(request)
    session = ctx.sessions.get(request.cookies.get(SESSION_COOKIE))
    return render(request, "error.html", session, status=403, title="Not allowed", message=str(exc))


def _answer(
    request: Request,
    record_id: str,
    ok: bool,
    message: str,
    *,
    status: int = 200,
    record: Any = None,
    deleted: bool = False,
) -> Response:
    base = base_path(request)
    target = f"{base}/dead-letters" if deleted else f"{base}/dead-letters/{record_id}"
    if "application/json" in request.headers.get("accept", ""):
        _, session = current(request)
        body: dict[str, Any] = {"ok": ok, "message": message}
        body["redirect"] = target if deleted else None
        if record is not None:
            body["status"] = record.status.value
            body["actions"] = actions_for(record.status, session.token.role)
            body["replays"] = record.replays
        return JSONResponse(body, status_code=status)
    response = RedirectResponse(target, status_code=303)
    set_flash(request, response, message)
    return response
