"""What the console's pages and actions share: templates, sessions, CSRF, flash messages.

Links are built from the app's ``root_path``, so the console works when the app is
mounted under a prefix (``app.mount("/dlq", create_app(...))``).
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from redrive.models import Status, format_time, utcnow
from redrive.ops.api.context import Context, get_context
from redrive.ops.auth import Role, Session, same

HERE = Path(__file__).parent
STATIC = HERE / "static"
SESSION_COOKIE = "redrive_session"
SIGNIN_COOKIE = "redrive_signin"
FLASH_COOKIE = "redrive_flash"

SECURITY_HEADERS = {
    # Only our own files: no inline script, no CDN, no framing.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

ACTIONS_BY_STATUS = {
    Status.DEAD: ("retry", "resolve", "discard"),
    Status.SCHEDULED: ("resolve", "discard"),
}


class SignInRequired(Exception):
    """No live session: the handler sends the browser to the sign-in page."""


class Denied(Exception):
    """The session's role is too low, or the CSRF value is wrong."""


def base_path(request: Request) -> str:
    """The prefix the app is mounted under ('' at the root)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def current(request: Request) -> tuple[Context, Session]:
    """The context and the signed-in session, or raise ``SignInRequired``."""
    ctx = get_context(request)
    session = ctx.sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise SignInRequired
    return ctx, session


def check(session: Session, csrf: str, role: Role = Role.VIEWER) -> None:
    """Refuse a form whose CSRF value is wrong, or a role that is too low."""
    if not same(csrf, session.csrf):
        raise Denied("the form has expired or did not come from this console; reload the page")
    if not session.token.role.allows(role):
        raise Denied(
            f"this needs the {role.value} role; you are signed in as "
            f"{session.token.name!r} ({session.token.role.value})"
        )


def actions_for(status: Status, role: Role) -> list[str]:
    """The buttons a record in ``status`` gets for ``role``."""
    allowed = list(ACTIONS_BY_STATUS.get(status, ())) if role.allows(Role.OPERATOR) else []
    return [*allowed, "delete"] if role.allows(Role.ADMIN) else allowed


def render(
    request: Request, name: str, session: Session | None, *, status: int = 200, **data: Any
) -> HTMLResponse:
    """Render ``name`` with the shared context; take the flash message if there is one."""
    flash = request.cookies.get(FLASH_COOKIE)
    html = ENV.get_template(name).render(
        base=base_path(request),
        session=session,
        flash=flash,
        path=request.url.path,
        role=session.token.role if session else None,
        Role=Role,
        **data,
    )
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path=cookie_path(request))
    return response


def error_page(request: Request, problem: Response) -> HTMLResponse:
    """The HTML page for an error the API would answer with ``problem`` (problem+json)."""
    try:
        body = json.loads(bytes(problem.body))
        status, detail = int(body["status"]), str(body["detail"])
    except (ValueError, KeyError, TypeError):
        status, detail = problem.status_code, "the request failed"
    session = None
    try:
        session = get_context(request).sessions.get(request.cookies.get(SESSION_COOKIE))
    except Exception:  # the error page must render even when the store is down
        session = None
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    response = render(request, "error.html", session, status=status, title=title, message=detail)
    for name in ("www-authenticate", "retry-after"):
        if name in problem.headers:
            response.headers[name] = problem.headers[name]
    return response


def set_flash(request: Request, response: Response, message: str) -> None:
    """Show ``message`` on the next page (one request only)."""
    response.set_cookie(
        FLASH_COOKIE,
        quote(message),
        max_age=60,
        httponly=True,
        samesite="strict",
        path=cookie_path(request),
    )


def cookie_path(request: Request) -> str:
    """Cookies are scoped to the console's prefix."""
    return base_path(request) or "/"


def new_signin_value() -> str:
    """A fresh double-submit value for the sign-in form (there is no session yet)."""
    return secrets.token_urlsafe(24)


def safe_next(request: Request, target: str | None) -> str:
    """Where to go after sign-in: only a path inside this console, never another site."""
    base = base_path(request)
    if target and target.startswith(base + "/") and not target.startswith("//"):
        return target
    return base + "/"


def _ago(value: str | datetime | None) -> str:
    if value is None:
        return "-"
    from redrive.models import parse_time

    when = parse_time(value)
    if when is None:
        return "-"
    seconds = int((utcnow() - when).total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            text = f"{seconds // size}{unit}"
            break
    else:
        text = f"{seconds}s"
    return f"in {text}" if future else f"{text} ago"


def _when(value: str | datetime | None) -> str:
    if isinstance(value, datetime):
        value = format_time(value)
    return value[:19].replace("T", " ") + " UTC" if value else "-"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def _unquote(value: str | None) -> str:
    from urllib.parse import unquote

    return unquote(value or "")


ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _num(value: Any) -> str:
    """Thousands separators: ``50000`` -> ``50,000``."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


ENV.filters.update(ago=_ago, when=_when, pretty=_pretty, unquote=_unquote, num=_num)
