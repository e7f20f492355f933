"""What the outbox refuses, with a message and before anything is written: contradictory
construction, nothing to deliver to, impossible limits, and a connection to another
database than the outbox's."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redrive import EventBus
from redrive.exceptions import ConfigError, RedriveError
from redrive.outbox import Outbox
from redrive.stores.sqlite import SQLiteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A SQLite store file for an outbox."""
    store = SQLiteStore(tmp_path / "app.db")
    yield store
    store.close()


def _pending(store: SQLiteStore) -> int:
    with sqlite3.connect(store.path) as conn:
        (count,) = conn.execute("SELECT count(*) FROM redrive_outbox").fetchone()
    return int(count)


def test_a_bus_and_a_publisher_together_are_refused(store: SQLiteStore) -> None:
    """Where would an event go? Giving both is a ConfigError."""
    with pytest.raises(ConfigError, match="give the outbox a bus or a publisher, not both"):
        Outbox(store, bus=EventBus(store), publisher=print)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ordering": "fifo"}, "ordering must be 'none' or 'key', got 'fifo'"),
        ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
    ],
)
def test_impossible_options_are_refused(
    store: SQLiteStore, options: dict[str, Any], message: str
) -> None:
    """An unknown ordering or an empty batch is refused when the outbox is built."""
    with pytest.raises(ConfigError, match=message):
        Outbox(store, publisher=print, **options)


async def test_dispatch_with_nowhere_to_deliver_is_refused_and_keeps_the_event(
    store: SQLiteStore,
) -> None:
    """An outbox built only to add events cannot dispatch: ConfigError, the row stays."""
    outbox = Outbox(store)
    with sqlite3.connect(store.path) as conn:
        outbox.add(conn, "orders.created", {"n": 1})
    with pytest.raises(ConfigError, match="no bus and no publisher"):
        await outbox.dispatch()
    assert _pending(store) == 1


def test_max_attempts_below_one_is_refused_before_the_insert(store: SQLiteStore) -> None:
    """An event that could never be tried is refused; the transaction holds nothing."""
    outbox = Outbox(store, publisher=print)
    refused = pytest.raises(RedriveError, match="max_attempts must be at least 1, got 0")
    with sqlite3.connect(store.path) as conn, refused:
        outbox.add(conn, "orders.created", {"n": 1}, max_attempts=0)
    assert _pending(store) == 0


def test_reads_refuse_an_empty_page_and_a_negative_age(store: SQLiteStore) -> None:
    """A page of zero dead events, or a cleanup of events dead for minus a day, is an
    error naming the value rather than an empty answer."""
    outbox = Outbox(store, publisher=print)
    with pytest.raises(RedriveError, match="limit must be at least 1, got 0"):
        outbox.fetch_dead_events(0)
    with pytest.raises(RedriveError, match="older_than_days cannot be negative, got -1"):
        outbox.cleanup_old_dead_events(-1)


@pytest.mark.postgres
def test_a_postgres_connection_to_a_sqlite_outbox_is_refused(
    store: SQLiteStore, postgres_url: str
) -> None:
    """The event would be written to another database than the dispatcher reads: refused
    with both names, and nothing is written to either."""
    import psycopg

    outbox = Outbox(store, publisher=print)
    refused = pytest.raises(RedriveError, match="this outbox is on sqlite, but the connection is")
    with psycopg.connect(postgres_url) as conn, refused:
        outbox.add(conn, "orders.created", {"n": 1})
    assert _pending(store) == 0
