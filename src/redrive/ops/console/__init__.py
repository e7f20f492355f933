"""The web console: server-rendered pages over the same service as the API.

Sign in with an API token; the console then keeps an HttpOnly, SameSite=Strict session
cookie, and every form carries a CSRF value. Pages work without JavaScript; the small
local script adds select-all and in-place status updates on the detail page.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles

from redrive.ops.console import actions, pages
from redrive.ops.console.web import STATIC, Denied, SignInRequired, base_path


def install(app: FastAPI) -> None:
    """Add the console's pages, form actions and static files to ``app``."""

    async def to_sign_in(request: Request, exc: Exception) -> RedirectResponse:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        return RedirectResponse(f"{base_path(request)}/signin?next={_quote(target)}", 303)

    app.add_exception_handler(SignInRequired, to_sign_in)
    app.add_exception_handler(Denied, actions.denied_response)
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="console-static")


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")
