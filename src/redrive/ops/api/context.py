"""What every route needs (the service, tokens, limits, the redactor) and the auth checks.

The app keeps one :class:`Context` in ``app.state.redrive``; routes reach it through the
``require(role)`` dependency, which also checks the bearer token.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from redrive.ops.api.filters import to_filter
from redrive.ops.api.options import ApiOptions
from redrive.ops.api.problems import Problem
from redrive.ops.api.schemas import FilterIn
from redrive.ops.auth import Role, Sessions, TokenInfo, Tokens
from redrive.redact import Redactor
from redrive.service import DeadLetterQueue
from redrive.stores.base import Filter

CHALLENGE = {"WWW-Authenticate": "Bearer"}
bearer = HTTPBearer(auto_error=False, description="An API token: `redrive token create`.")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Context:
    """The app's collaborators, built once by ``create_app``."""

    service: DeadLetterQueue
    options: ApiOptions
    tokens: Tokens
    sessions: Sessions
    redactor: Redactor

    @classmethod
    def build(cls, service: DeadLetterQueue, options: ApiOptions) -> Context:
        """Wire tokens, sessions and the redactor around ``service``."""
        redactor = options.redactor() if options.redact else service.redactor
        service = service.masked(redactor)  # searches and groups scrubbed like the pages
        tokens = Tokens(service)
        ttl = timedelta(hours=options.session_hours)
        sessions = Sessions(service, tokens, ttl)
        return cls(
            service=service,
            options=options,
            tokens=tokens,
            sessions=sessions,
            redactor=redactor,
        )

    def where(self, data: FilterIn) -> Filter:
        """The store filter of a request's criteria; the payload is searched only when no
        field is masked (a search over raw payloads would reveal masked values)."""
        return to_filter(data, self.service.clock.now(), payload_search=not self.redactor)


@dataclasses.dataclass(frozen=True, slots=True)
class Caller:
    """The context of a request made by an authenticated token."""

    ctx: Context
    token: TokenInfo

    @property
    def service(self) -> DeadLetterQueue:
        """The dead-letter service."""
        return self.ctx.service

    @property
    def actor(self) -> str:
        """Who acts, for the audit trail: the token's name."""
        return self.token.name


def get_context(request: Request) -> Context:
    """The app's context (works when the app is mounted inside another)."""
    ctx: Context = request.app.state.redrive
    return ctx


def require(role: Role) -> Callable[..., Any]:
    """A dependency that admits a valid bearer token of at least ``role``."""

    def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> Caller:
        ctx = get_context(request)
        if credentials is None:
            raise Problem(
                401, "send an API token: Authorization: Bearer <token>", headers=CHALLENGE
            )
        token = ctx.tokens.check(credentials.credentials)
        if token is None:
            raise Problem(401, "the token is invalid or revoked", headers=CHALLENGE)
        if not token.role.allows(role):
            raise Problem(
                403,
                f"this needs the {role.value} role; token {token.name!r} has {token.role.value}",
            )
        return Caller(ctx, token)

    return dependency


viewer = Depends(require(Role.VIEWER))
operator = Depends(require(Role.OPERATOR))
admin = Depends(require(Role.ADMIN))
