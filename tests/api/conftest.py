"""Fixtures of the API tests: the app served by real uvicorn over a real store, and a
token of each role."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from redrive.bootstrap import open_store
from redrive.config import Settings
from redrive.models import DeadLetter
from redrive.ops.api import create_app
from redrive.ops.auth import Tokens
from redrive.service import DeadLetterQueue
from redrive.stores.base import Store
from tests.api.server import Server
from tests.factories import make_record

REDACT = ["password", "card.number", "authorization"]


@dataclasses.dataclass
class Api:
    """A running API: its URL, the service behind it, and a client per role."""

    url: str
    service: DeadLetterQueue
    tokens: dict[str, str]
    clients: dict[str, httpx.Client]

    @property
    def store(self) -> Store:
        """The store behind the API (tests seed it directly)."""
        return self.service.store

    def add(self, count: int = 1, **fields: Any) -> list[DeadLetter]:
        """Write ``count`` records built by ``make_record(**fields)``; oldest first."""
        records = [make_record(**fields) for _ in range(count)]
        self.store.add(records)
        return records

    def __getattr__(self, role: str) -> httpx.Client:
        """``api.viewer``, ``api.operator``, ``api.admin``, ``api.anonymous``: clients."""
        if role.startswith("_") or role == "clients":
            raise AttributeError(role)
        try:
            return self.clients[role]
        except KeyError:
            raise AttributeError(role) from None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def api_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store: a SQLite file, or a database on a real PostgreSQL server."""
    if request.param == "sqlite":
        store = open_store(f"sqlite:///{tmp_path / 'api.db'}")
    else:
        store = open_store(request.getfixturevalue("postgres_url"))
    yield store
    store.close()


@pytest.fixture
def api_settings(tmp_path: Path) -> Settings:
    """Settings with redaction on, an archive directory in the test's temp dir, and small
    limits so the limit tests stay small."""
    return Settings(
        redact=tuple(REDACT),
        sections={
            "api": {
                "max_page": 100,
                "max_bulk_ids": 50,
                "max_body_bytes": 64 * 1024,
                "archive_dir": str(tmp_path / "archive"),
            },
        },
    )


@pytest.fixture
def api(api_store: Store, api_settings: Settings) -> Iterator[Api]:
    """The app on real uvicorn, with a viewer, an operator and an admin token."""
    service = DeadLetterQueue(api_store, actor="os-user")
    tokens = Tokens(service)
    secrets = {
        role: tokens.create(f"{role}-token", role)[0] for role in ("viewer", "operator", "admin")
    }
    with Server(create_app(service, api_settings)) as url:
        clients = {
            role: httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            for role, token in secrets.items()
        }
        clients["anonymous"] = httpx.Client(base_url=url, timeout=30)
        try:
            yield Api(url=url, service=service, tokens=secrets, clients=clients)
        finally:
            for client in clients.values():
                client.close()


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert ``response`` is an RFC 9457 problem with ``status``; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body
