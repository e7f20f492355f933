"""Fixtures shared by every test: stores on real SQLite files or in memory, a fake clock.

Folders are surfaces, cost is a marker. Each folder under ``tests/`` is one thing a user
touches or one layer: ``unit`` (pure functions and the service on SQLite), ``contract``
(every store backend against one suite), ``integration`` (the bus, outbox and worker
processes), ``cli`` (the ``redrive`` command end to end), ``api`` (the REST API and the
console over HTTP), ``ops`` (alerts and metrics), ``browser`` (the console in Chromium); a
new transport or tool gets a folder of its own (``nats``, ``kafka``, ``bench``). What a test
needs or costs is a marker, never a folder: ``postgres``, ``nats``, ``kafka``, ``browser``,
``slow`` (see ``pyproject.toml``), so ``-m "not postgres and not browser"`` picks a tier
across every surface. ``make test-fast`` is the quick loop (CONTRIBUTING.md, "Test tiers").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redrive.stores.sqlite import SQLiteStore
from redrive.testing import FakeClock, MemoryStore

pytest_plugins = ["tests.pg_server"]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A path for a fresh SQLite database file."""
    return tmp_path / "redrive.db"


@pytest.fixture
def sqlite_store(db_path: Path) -> Iterator[SQLiteStore]:
    """A store on a real SQLite file."""
    store = SQLiteStore(db_path)
    yield store
    store.close()


@pytest.fixture
def memory_store() -> Iterator[MemoryStore]:
    """A store on SQLite in memory (``redrive.testing.MemoryStore``), closed after the test."""
    store = MemoryStore()
    yield store
    store.close()


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when told to."""
    return FakeClock()
