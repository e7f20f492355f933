"""Fixtures shared by every test: stores on real SQLite files, a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redrive.stores.sqlite import SQLiteStore
from redrive.testing import FakeClock

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
def clock() -> FakeClock:
    """A clock that moves only when told to."""
    return FakeClock()
