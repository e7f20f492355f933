"""Fixtures of the API tests: the app over a real store, and a client per role.

By default the app runs in-process (``tests/api/inprocess.py``: no socket, no server start)
on a SQLite file, since a real server adds nothing to most tests and the contract suite
already runs every store query on both backends. Two opt-ins:

- ``@pytest.mark.uvicorn`` serves the app on real uvicorn (streamed responses, body limits);
- ``@on_postgres_too`` runs the test on PostgreSQL as well (the item is marked ``postgres``).

``api.url`` is always a real URL: in-process, the first use of it starts a uvicorn server
for the test's own clients. In-process, a response is read whole before the client sees it:
a test that reads part of a stream, or one that never ends, needs ``@pytest.mark.uvicorn``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import datetime
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
from tests.api.inprocess import InProcess
from tests.api.server import Server
from tests.factories import make_record

REDACT = ["password", "card.number", "authorization"]
ROLES = ("viewer", "operator", "admin")
IN_PROCESS_URL = "http://127.0.0.1"

#: Run an API test on PostgreSQL too (search, filters, groups, bulk, exports).
on_postgres_too = pytest.mark.parametrize(
    "api_store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


class Api:
    """A running API: its URL, the service behind it, and a client per role."""

    def __init__(
        self,
        service: DeadLetterQueue,
        tokens: dict[str, str],
        clients: dict[str, httpx.Client],
        url: str | Callable[[], str],
        new_client: Callable[[dict[str, str]], httpx.Client],
    ) -> None:
        self.service = service
        self.tokens = tokens
        self.clients = clients
        self._url = url
        self._new_client = new_client

    @property
    def url(self) -> str:
        """The server's base URL (in-process, a uvicorn server starts on first use)."""
        if callable(self._url):
            self._url = self._url()
        return self._url

    def client(self, headers: dict[str, str] | None = None) -> httpx.Client:
        """A new client of this API (it keeps cookies, like a browser), closed after the test."""
        return self._new_client(headers or {})

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


@pytest.fixture
def api_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store: a SQLite file, or (``@on_postgres_too``) a database on a real
    PostgreSQL server."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
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
def api(request: pytest.FixtureRequest, api_store: Store, api_settings: Settings) -> Iterator[Api]:
    """The app (in-process, or on real uvicorn with ``@pytest.mark.uvicorn``), with a
    viewer, an operator and an admin token."""
    service = DeadLetterQueue(api_store, actor="os-user")
    tokens = Tokens(service)
    secrets = {role: tokens.create(f"{role}-token", role)[0] for role in ROLES}
    app = create_app(service, api_settings)
    with contextlib.ExitStack() as stack:
        transport: httpx.BaseTransport | None = None
        if request.node.get_closest_marker("uvicorn"):
            base_url = stack.enter_context(Server(app))
            url: str | Callable[[], str] = base_url
        else:
            transport = stack.enter_context(InProcess(app))
            base_url = IN_PROCESS_URL

            def serve() -> str:  # a real server for the test's own clients, started when used
                return stack.enter_context(Server(app))

            url = serve

        def new_client(headers: dict[str, str]) -> httpx.Client:
            client = httpx.Client(
                base_url=base_url, transport=transport, headers=headers, timeout=30
            )
            stack.callback(client.close)
            return client

        clients = {
            role: new_client({"Authorization": f"Bearer {token}"})
            for role, token in secrets.items()
        }
        clients["anonymous"] = new_client({})
        yield Api(service=service, tokens=secrets, clients=clients, url=url, new_client=new_client)


def due_times(api: Api, records: list[DeadLetter]) -> list[datetime]:
    """The records' ``next_attempt_at`` as stored now, earliest first (each must be set)."""
    due = [api.service.get(record.id).next_attempt_at for record in records]
    assert all(at is not None for at in due), due
    return sorted(at for at in due if at is not None)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert ``response`` is an RFC 9457 problem with ``status``; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body
