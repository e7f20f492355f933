"""Errors as RFC 9457 ``application/problem+json``, and how redrive's exceptions map to them.

Every error a client can cause gets a 4xx with a ``detail`` that says what to change;
anything else is a 500 with no traceback, logged on the server. Details never carry a
token, a secret or a store password.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from redrive.exceptions import (
    InvalidInput,
    InvalidTransition,
    NotFound,
    StoreError,
    StoreUnavailable,
)
from redrive.ops.auth import TokenError

logger = logging.getLogger("redrive.api")

MEDIA_TYPE = "application/problem+json"
_UNPARSABLE = "There was an error parsing the body"
"""FastAPI's 400 detail for a body its JSON parser gave up on."""

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}


class Problem(Exception):
    """Raise in a route to answer with a problem document."""

    def __init__(
        self, status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers
        self.extra = extra


def problem_response(
    request: Request | None,
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response for ``status`` with ``detail``."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if request is not None:
        body["instance"] = request.url.path
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error codes a route may answer with."""
    return {
        code: {
            "description": HTTPStatus(code).phrase,
            "content": {MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}},
        }
        for code in sorted({401, 413, 422, *codes})
    }


def _message(error: Any) -> str:
    """Pydantic's message without its "Value error, " prefix (our validators' own text)."""
    text = str(error.get("msg"))
    return text.removeprefix("Value error, ")


def install(app: FastAPI) -> None:
    """Register the exception handlers that turn errors into problem documents."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(request, exc.status, exc.detail, exc.headers, **exc.extra)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 400 and detail == _UNPARSABLE:  # e.g. nested 100,000 deep
            detail = "the body cannot be parsed as JSON (or is nested far too deeply)"
            return problem_response(request, 422, detail, headers=headers)
        return problem_response(request, exc.status_code, detail, headers=headers)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # The submitted values are left out on purpose: they may hold secrets.
        errors = [
            {"loc": [str(part) for part in error.get("loc", ())], "msg": _message(error)}
            for error in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"][1:])
        # A whole-body check (schemas._In) names the field in its message already.
        detail = f"{where}: {first['msg']}" if where else str(first["msg"])
        return problem_response(request, 422, detail, errors=errors)

    async def on_not_found(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(request, 404, str(exc))

    async def on_conflict(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(request, 409, str(exc))

    async def on_token(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(request, 422, str(exc))

    async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(request, 422, str(exc))

    async def on_store(request: Request, exc: Exception) -> JSONResponse:
        logger.error("store error on %s: %s", request.url.path, exc)
        unavailable = isinstance(exc, StoreUnavailable)
        detail = "the store is unavailable" if unavailable else "the store failed"
        return problem_response(request, 503, f"{detail}; try again later")

    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the server's log (uvicorn logs it), never to the client.
        return problem_response(request, 500, "internal error; the server log has the details")

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(NotFound, on_not_found)
    app.add_exception_handler(InvalidTransition, on_conflict)
    app.add_exception_handler(TokenError, on_token)
    app.add_exception_handler(InvalidInput, on_invalid)
    app.add_exception_handler(StoreError, on_store)
    app.add_exception_handler(Exception, on_bug)
