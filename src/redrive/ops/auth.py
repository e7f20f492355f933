"""API tokens and console sessions, kept in the store's small key/value (``meta_*``).

A token is ``rdv_<id>_<secret>``: the id finds its entry in one lookup, and only a SHA-256
hash of the whole token is stored, compared in constant time. Tokens are 256-bit random
strings, so a plain hash is enough (a slow password hash protects guessable secrets, not
these). A console session works the same way: the cookie holds a random value and the
store keeps its hash, the token id it belongs to, a CSRF secret and an expiry; revoking the
token ends its sessions at once.

This is the one ops module that touches ``service.store`` directly, and only its
``meta_*`` key/value.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from redrive.exceptions import NotFound, RedriveError
from redrive.models import format_time, parse_time
from redrive.service import DeadLetterQueue

TOKENS = "tokens"
SESSIONS = "sessions"
LAST_USED_EVERY = timedelta(minutes=1)
PREFIX = "rdv_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class Role(enum.StrEnum):
    """What a token may do; each role can do everything the ones before it can."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        """Whether this role is at least ``needed``."""
        order = list(Role)
        return order.index(self) >= order.index(needed)


class TokenError(RedriveError):
    """The token request is invalid."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TokenInfo:
    """A token as listed: never the secret, never the hash."""

    id: str
    name: str
    role: Role
    created_at: datetime | None
    last_used_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the token's public fields."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role.value,
            "created_at": format_time(self.created_at),
            "last_used_at": format_time(self.last_used_at),
        }


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Session:
    """A signed-in console user."""

    token: TokenInfo
    csrf: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class Tokens:
    """Create, list, revoke and check API tokens.

    .. versionadded:: 0.1
    """

    def __init__(self, service: DeadLetterQueue) -> None:
        self._service = service
        self._store = service.store
        self._clock = service.clock

    def create(
        self, name: str, role: Role | str = Role.VIEWER, *, actor: str | None = None
    ) -> tuple[str, TokenInfo]:
        """Make a token; return it (shown once, never stored) and its public fields.

        The audit trail records who created it (``actor``, else the service's actor).
        """
        if not _NAME.match(name):
            raise TokenError(
                f"a token name is 1-64 letters, digits, '_', '.', '@' or '-', got {name!r}"
            )
        try:
            role = Role(role)
        except ValueError:
            raise TokenError(f"role must be one of viewer, operator, admin, got {role!r}") from None
        if any(info.name == name for info in self.list()):
            raise TokenError(f"a token named {name!r} exists already; revoke it first")
        token_id = secrets.token_hex(6)
        token = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        now = self._clock.now()
        value = {
            "name": name,
            "role": role.value,
            "hash": _digest(token),
            "created_at": format_time(now),
        }
        if not self._store.meta_put(TOKENS, token_id, value, version=0):
            raise TokenError("token id collision; try again")
        detail = {"name": name, "role": role.value, "id": token_id}
        self._service.record("token.create", detail=detail, actor=actor)
        return token, TokenInfo(id=token_id, name=name, role=role, created_at=now)

    def list(self) -> list[TokenInfo]:
        """Every token's public fields, by name."""
        infos = [_info(key, value) for key, value in self._store.meta_list(TOKENS).items()]
        return sorted(infos, key=lambda info: info.name)

    def revoke(self, name_or_id: str, *, actor: str | None = None) -> TokenInfo:
        """Delete a token (by name or id) and so end its sessions; raises ``NotFound``."""
        for info in self.list():
            if name_or_id in (info.name, info.id):
                self._store.meta_delete(TOKENS, info.id)
                detail = {"name": info.name, "role": info.role.value, "id": info.id}
                self._service.record("token.revoke", detail=detail, actor=actor)
                return info
        raise NotFound(f"no token named {name_or_id!r}")

    def check(self, token: str) -> TokenInfo | None:
        """The token's fields if ``token`` is valid, else None (constant-time compare)."""
        token_id = _token_id(token)
        found = self._store.meta_get(TOKENS, token_id) if token_id else None
        # Compare against a dummy hash when the id is unknown, so timing does not tell
        # an attacker which ids exist.
        stored = found[0] if found is not None and isinstance(found[0], dict) else {}
        expected = str(stored.get("hash", "0" * 64))
        if not hmac.compare_digest(_digest(token), expected) or not stored or not token_id:
            return None
        assert found is not None
        self._touch(token_id, stored, found[1])
        return _info(token_id, stored)

    def _touch(self, token_id: str, stored: dict[str, Any], version: int) -> None:
        """Note when the token was last used (at most once a minute: a write per request
        would load the store; a lost race just skips one update)."""
        now = self._clock.now()
        last = parse_time(stored.get("last_used_at"))
        if last is None or now - last >= LAST_USED_EVERY:
            value = {**stored, "last_used_at": format_time(now)}
            self._store.meta_put(TOKENS, token_id, value, version=version)

    def get(self, token_id: str) -> TokenInfo | None:
        """The token with that id, if it still exists."""
        found = self._store.meta_get(TOKENS, token_id)
        return _info(token_id, found[0]) if found is not None else None


class Sessions:
    """Console sessions: a cookie value in, the signed-in token out."""

    def __init__(self, service: DeadLetterQueue, tokens: Tokens, ttl: timedelta) -> None:
        self._store = service.store
        self._clock = service.clock
        self._tokens = tokens
        self._ttl = ttl

    def start(self, token: TokenInfo) -> tuple[str, Session]:
        """A new session for ``token``; return the cookie value and the session."""
        cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires = self._clock.now() + self._ttl
        value = {"token_id": token.id, "csrf": csrf, "expires_at": format_time(expires)}
        self._store.meta_put(SESSIONS, _digest(cookie), value)
        self._sweep()
        return cookie, Session(token=token, csrf=csrf)

    def get(self, cookie: str | None) -> Session | None:
        """The live session behind ``cookie``, or None (expired, revoked or unknown)."""
        if not cookie:
            return None
        found = self._store.meta_get(SESSIONS, _digest(cookie))
        if found is None or not isinstance(found[0], dict):
            return None
        value = found[0]
        expires = parse_time(value.get("expires_at"))
        token = self._tokens.get(str(value.get("token_id")))
        if token is None or expires is None or expires <= self._clock.now():
            self._store.meta_delete(SESSIONS, _digest(cookie))
            return None
        return Session(token=token, csrf=str(value.get("csrf")))

    def end(self, cookie: str | None) -> None:
        """Sign out: forget the session."""
        if cookie:
            self._store.meta_delete(SESSIONS, _digest(cookie))

    def _sweep(self) -> None:
        """Drop expired sessions, so the namespace stays small."""
        now = self._clock.now()
        for key, value in self._store.meta_list(SESSIONS).items():
            expires = parse_time(value.get("expires_at")) if isinstance(value, dict) else None
            if expires is None or expires <= now:
                self._store.meta_delete(SESSIONS, key)


def same(a: str, b: str) -> bool:
    """Constant-time string equality (for CSRF values)."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _token_id(token: str) -> str | None:
    if not token.startswith(PREFIX):
        return None
    token_id, sep, _ = token[len(PREFIX) :].partition("_")
    return token_id if sep and re.fullmatch(r"[0-9a-f]{12}", token_id) else None


def _info(token_id: str, value: Any) -> TokenInfo:
    data = value if isinstance(value, dict) else {}
    return TokenInfo(
        id=token_id,
        name=str(data.get("name", "?")),
        role=Role(data.get("role", "viewer")),
        created_at=parse_time(data.get("created_at")),
        last_used_at=parse_time(data.get("last_used_at")),
    )
