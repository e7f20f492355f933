"""The store contract suite runs against every backend in ``BACKENDS``.

A backend is a name and a factory ``(request, tmp_path) -> Store``; the PostgreSQL one
starts (once per session) a real server and gives each test a fresh database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from redrive.stores.base import Store
from redrive.stores.sqlite import SQLiteStore

StoreFactory = Callable[[pytest.FixtureRequest, Path], Store]


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return SQLiteStore(tmp_path / "contract.db")


def _postgres(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    from redrive.stores.postgres import PostgresStore

    url: str = request.getfixturevalue("postgres_url")
    return PostgresStore(url)


BACKENDS: dict[str, tuple[StoreFactory, tuple[pytest.MarkDecorator, ...]]] = {
    "sqlite": (_sqlite, ()),
}
BACKENDS["postgres"] = (_postgres, (pytest.mark.postgres,))


@pytest.fixture(params=[pytest.param(name, marks=marks) for name, (_, marks) in BACKENDS.items()])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, migrated store of each backend."""
    factory, _ = BACKENDS[request.param]
    backend = factory(request, tmp_path)
    yield backend
    backend.close()
