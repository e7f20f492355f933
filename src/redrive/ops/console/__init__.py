"""The web console: server-rendered pages over the same service as the API.

Sign in with an API token; the console then keeps an HttpOnly, SameSite=Strict session
cookie, and every form carries a CSRF value. Pages work without JavaScript; the small
local script adds select-all and in-place status updates on the detail page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles

from redrive.exceptions import NotFound, StoreError
from redrive.ops.console import actions, audit, pages, replays
from redrive.ops.console.web import STATIC, Denied, SignInRequired, base_path, error_page

Handler = Callable[[Request, Exception], Awaitable[Response]]

NOT_CONSOLE = ("/api/", "/metrics", "/healthz", "/readyz", "/openapi.json")


def install(app: FastAPI) -> None:
    """Add the console's pages, form actions and static files to ``app``."""

    async def to_sign_in(request: Request, exc: Exception) -> RedirectResponse:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        return RedirectResponse(f"{base_path(request)}/signin?next={_quote(target)}", 303)

    app.add_exception_handler(SignInRequired, to_sign_in)
    app.add_exception_handler(Denied, actions.denied_response)
    for kind in (Exception, HTTPException, RequestValidationError, NotFound, StoreError):
        _html_errors(app, kind)
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.include_router(replays.router)
    app.include_router(audit.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="console-static")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        """The icon, for clients that ask for it by the old name."""
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")


def _html_errors(app: FastAPI, kind: type[Exception]) -> None:
    """Answer errors on console pages with an HTML page (with a way back); API paths and
    the page's script (``Accept: application/json``) keep their problem documents."""
    api_handler: Handler | None = app.exception_handlers.get(kind)  # type: ignore[assignment]  # Starlette types handlers loosely
    if api_handler is None:
        return

    async def handler(request: Request, exc: Exception) -> Response:
        path = request.url.path[len(base_path(request)) :]
        wants_json = "application/json" in request.headers.get("accept", "")
        if wants_json or path.startswith(NOT_CONSOLE):
            return await api_handler(request, exc)
        return error_page(request, await api_handler(request, exc))

    app.add_exception_handler(kind, handler)


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")
