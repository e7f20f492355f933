"""Refuse, before any route runs, request paths and query strings that are not text a store
can look up: percent-escapes that are not UTF-8 (``%ED%A0%80``, a lone surrogate; ``%FF``),
and NUL characters (PostgreSQL cannot compare text holding one). Each is a 422 problem
naming what is wrong, for the API and the console alike. Bodies are checked by the request
schemas (``schemas._In``) and the console's forms."""

from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from redrive._json import text_problem


class PlainText:
    """Answer 422 (problem+json) to a path or query that holds no storable text."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = _problem(scope)
            if problem is not None:
                await _refuse(scope, send, problem)
                return
        await self.app(scope, receive, send)


def _problem(scope: Scope) -> str | None:
    raw_path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogatepass")
    parts = [("the path", raw_path)]
    query = scope.get("query_string") or b""
    if query:
        parts += [("the query", part.replace(b"+", b" ")) for part in query.split(b"&")]
    for what, raw in parts:
        try:
            text = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return f"{what} is not valid UTF-8 once percent-decoded"
        problem = text_problem(text)
        if problem is not None:
            name = text.split("=", 1)[0] if what == "the query" else ""
            return f"{what}{f' parameter {name!r}' if name else ''} {problem}"
    return None


async def _refuse(scope: Scope, send: Send, detail: str) -> None:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": "Unprocessable Content",
            "status": 422,
            "detail": detail,
            "instance": scope.get("path", ""),
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
