"""The transactional outbox on PostgreSQL and on SQLite, with real connections."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy
from sqlalchemy.orm import Session

from redrive import EventBus, RetryPolicy
from redrive.exceptions import InvalidTransition, NotFound, RedriveError
from redrive.models import Event, Status
from redrive.outbox import Outbox
from redrive.stores.base import Filter, Store
from redrive.stores.postgres import PostgresStore
from redrive.stores.sqlite import SQLiteStore
from redrive.testing import FakeClock


class Backend:
    """A store, and how the application opens its own connection to the same database."""

    def __init__(self, kind: str, store: Store, url: str) -> None:
        self.kind, self.store, self.url = kind, store, url

    def connect(self) -> Any:
        if self.kind == "postgres":
            return psycopg.connect(self.url)
        return sqlite3.connect(self.url)

    def engine(self) -> sqlalchemy.Engine:
        if self.kind == "postgres":
            url = self.url.replace("postgresql://", "postgresql+psycopg://")
            return sqlalchemy.create_engine(url)
        return sqlalchemy.create_engine(f"sqlite:///{self.url}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A migrated store of each kind, with the outbox table."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        store: Store = PostgresStore(url)
        backend = Backend("postgres", store, url)
    else:
        path = tmp_path / "app.db"
        store = SQLiteStore(path)
        backend = Backend("sqlite", store, str(path))
    yield backend
    store.close()


def _add(db: Backend, outbox: Outbox, topic: str, payload: Any, **fields: Any) -> str:
    conn = db.connect()
    try:
        event_id = outbox.add(conn, topic, payload, **fields)
        conn.commit()
    finally:
        conn.close()
    return event_id


def _publisher(delivered: list[Event], fail: set[str] | None = None) -> Any:
    async def publish(event: Event) -> None:
        if fail is not None and event.payload["n"] in fail:
            raise ConnectionError(f"broker refused {event.payload['n']}")
        delivered.append(event)

    return publish


class TestAdd:
    async def test_rolled_back_transaction_leaves_no_event(self, db: Backend) -> None:
        """An event added in a transaction that rolls back is gone with it."""
        delivered: list[Event] = []
        outbox = Outbox(db.store, publisher=_publisher(delivered))
        conn = db.connect()
        outbox.add(conn, "orders.created", {"n": "1"})
        conn.rollback()
        conn.close()
        assert await outbox.dispatch() == 0
        assert delivered == []

    async def test_committed_event_is_delivered_with_its_fields(self, db: Backend) -> None:
        """A committed event reaches the publisher with payload, key, headers and id."""
        delivered: list[Event] = []
        outbox = Outbox(db.store, publisher=_publisher(delivered))
        event_id = _add(
            db,
            outbox,
            "orders.created",
            {"n": "1"},
            key="o-1",
            headers={"h": "v"},
            aggregate_type="order",
            aggregate_id=42,
        )
        assert await outbox.dispatch() == 1
        assert [(e.id, e.payload, e.key, dict(e.headers)) for e in delivered] == [
            (event_id, {"n": "1"}, "o-1", {"h": "v"})
        ]

    async def test_sqlalchemy_session_commits_with_the_business_write(self, db: Backend) -> None:
        """outbox.add through a SQLAlchemy session commits or rolls back with the session."""
        delivered: list[Event] = []
        outbox = Outbox(db.store, publisher=_publisher(delivered))
        engine = db.engine()
        with Session(engine) as session:
            outbox.add(session, "orders.created", {"n": "kept"})
            session.commit()
        with Session(engine) as session:
            outbox.add(session, "orders.created", {"n": "dropped"})
            session.rollback()
        engine.dispose()
        await outbox.dispatch()
        assert [e.payload for e in delivered] == [{"n": "kept"}]

    def test_payload_that_is_not_json_is_refused(self, db: Backend) -> None:
        """A payload that cannot be JSON raises a one-line error and writes nothing."""
        outbox = Outbox(db.store, publisher=_publisher([]))
        conn = db.connect()
        with pytest.raises(RedriveError, match="is not JSON") as info:
            outbox.add(conn, "orders.created", {"n": object()})
        conn.close()
        assert "\n" not in str(info.value)
        assert outbox.count_dead_events() == 0

    def test_wrong_kind_of_connection_is_refused(self, db: Backend) -> None:
        """A connection that is not a supported driver gets a clear error."""
        outbox = Outbox(db.store, publisher=_publisher([]))
        with pytest.raises(RedriveError, match="needs a psycopg connection"):
            outbox.add(object(), "orders.created", {"n": "1"})


class TestDispatch:
    async def test_bus_handlers_get_the_event_and_failures_become_dead_letters(
        self, db: Backend
    ) -> None:
        """With a bus, each handler runs once; a failing one leaves a dead letter pointing
        at the outbox row, and the row is done."""
        bus = EventBus(db.store)
        seen: list[str] = []

        @bus.handler("orders.created", name="ok")
        async def ok(event: Event) -> None:
            seen.append(event.payload["n"])

        @bus.handler("orders.created", name="broken", policy=RetryPolicy(max_attempts=1))
        async def broken(event: Event) -> None:
            raise RuntimeError("template missing")

        outbox = Outbox(db.store, bus=bus)
        _add(db, outbox, "orders.created", {"n": "1"})
        await outbox.dispatch()
        dead = db.store.find(Filter(statuses=(Status.DEAD,)), limit=10).items
        assert seen == ["1"]
        assert [(r.handler, dict(r.origin)) for r in dead] == [("broken", {"outbox_id": 1})]
        assert outbox.get(1).status == "done"

    async def test_publisher_failures_retry_then_go_dead_with_a_dead_letter(
        self, db: Backend
    ) -> None:
        """A delivery failing max_attempts times marks the row dead and records a dead
        letter with the error, listed like any other."""
        clock = FakeClock()
        outbox = Outbox(
            db.store,
            publisher=_publisher([], fail={"1"}),
            clock=clock,
            policy=RetryPolicy(max_attempts=2, initial_delay=10),
        )
        _add(db, outbox, "orders.created", {"n": "1"})
        await outbox.dispatch()
        row = outbox.get(1)
        assert (row.status, row.attempts) == ("pending", 1)
        assert row.last_error == "ConnectionError: broker refused 1"
        assert await outbox.dispatch() == 0  # not due yet
        clock.advance(11)
        await outbox.dispatch()
        assert outbox.get(1).status == "dead"
        [record] = db.store.find(Filter(statuses=(Status.DEAD,)), limit=10).items
        assert record.error_type == "ConnectionError"
        assert record.origin["outbox_id"] == 1
        assert "broker refused" in record.traceback

    async def test_key_ordering_holds_back_later_events_of_a_failing_key(self, db: Backend) -> None:
        """With ordering='key', a failing event delays its key's later events, not others."""
        clock = FakeClock()
        delivered: list[Event] = []
        fail = {"a"}
        outbox = Outbox(
            db.store,
            publisher=_publisher(delivered, fail),
            clock=clock,
            ordering="key",
            policy=RetryPolicy(initial_delay=5),
        )
        for n, key in (("a", "k1"), ("b", "k1"), ("c", "k2")):
            _add(db, outbox, "orders.created", {"n": n}, key=key)
        await outbox.dispatch()
        await outbox.dispatch()
        assert [e.payload["n"] for e in delivered] == ["c"]
        fail.clear()
        clock.advance(6)
        await outbox.dispatch()
        await outbox.dispatch()
        assert [e.payload["n"] for e in delivered] == ["c", "a", "b"]

    async def test_rows_of_a_dispatcher_that_died_are_delivered_after_its_lease(
        self, db: Backend
    ) -> None:
        """Rows claimed by a dispatcher that vanished are delivered once its lease ends."""
        clock = FakeClock()
        delivered: list[Event] = []
        outbox = Outbox(
            db.store, publisher=_publisher(delivered), clock=clock, lease=timedelta(seconds=30)
        )
        _add(db, outbox, "orders.created", {"n": "1"})
        now = clock.now()
        outbox._backend.claim(
            now=now, lease_until=now + timedelta(seconds=30), owner="gone", limit=10, by_key=False
        )
        assert await outbox.dispatch() == 0
        clock.advance(31)
        assert await outbox.dispatch() == 1
        assert [e.payload for e in delivered] == [{"n": "1"}]

    @pytest.mark.postgres
    async def test_run_wakes_on_insert_without_polling(self, postgres_url: str) -> None:
        """A dispatcher that polls once a minute delivers a new event at once (NOTIFY)."""
        store = PostgresStore(postgres_url)
        got = asyncio.Event()

        async def publish(event: Event) -> None:
            got.set()

        outbox = Outbox(store, publisher=publish, poll_interval=60)
        task = asyncio.create_task(outbox.run())
        try:
            await asyncio.sleep(0)  # let run() start listening
            await asyncio.to_thread(
                _add, Backend("postgres", store, postgres_url), outbox, "orders.created", {"n": "1"}
            )
            await asyncio.wait_for(got.wait(), timeout=20)
        finally:
            outbox.stop()
            await task
            outbox.close()
            store.close()


class TestRepository:
    async def _dead(self, db: Backend, count: int, **fields: Any) -> Outbox:
        outbox = Outbox(
            db.store, publisher=_publisher([], fail={"x"}), policy=RetryPolicy(max_attempts=1)
        )
        for _ in range(count):
            _add(db, outbox, "orders.created", {"n": "x"}, **fields)
        await outbox.dispatch()
        return outbox

    async def test_fetch_dead_events_pages_by_cursor(self, db: Backend) -> None:
        """Following next_cursor lists every dead event once, newest first."""
        outbox = await self._dead(db, 5, aggregate_type="order")
        seen, cursor = [], None
        while True:
            page = outbox.fetch_dead_events(limit=2, cursor=cursor, aggregate_type="order")
            seen += [e.id for e in page.items]
            if (cursor := page.next_cursor) is None:
                break
        assert seen == [5, 4, 3, 2, 1]
        assert outbox.count_dead_events(event_type="orders.created") == 5
        assert outbox.count_dead_events(aggregate_type="invoice") == 0

    async def test_retry_dead_event_and_its_errors(self, db: Backend) -> None:
        """retry_dead_event re-queues a dead event and refuses one that is not dead."""
        outbox = await self._dead(db, 1)
        outbox.retry_dead_event(1)
        assert (outbox.get(1).status, outbox.get(1).attempts) == ("pending", 0)
        with pytest.raises(InvalidTransition, match="outbox event 1 is pending, not dead"):
            outbox.retry_dead_event(1)
        with pytest.raises(NotFound):
            outbox.retry_dead_event(999)

    async def test_retry_batch_counts_only_dead_events(self, db: Backend) -> None:
        """retry_dead_events_batch returns how many of the ids were dead."""
        outbox = await self._dead(db, 3)
        assert outbox.retry_dead_events_batch([1, 2, 2, 999]) == 2

    async def test_cleanup_and_archive(self, db: Backend) -> None:
        """Old dead events are deleted; old done events move to the archive."""
        clock = FakeClock()
        outbox = Outbox(
            db.store,
            publisher=_publisher([], fail={"x"}),
            clock=clock,
            policy=RetryPolicy(max_attempts=1),
        )
        _add(db, outbox, "orders.created", {"n": "x"})
        _add(db, outbox, "orders.created", {"n": "ok"})
        await outbox.dispatch()
        assert outbox.cleanup_old_dead_events(older_than_days=1) == 0
        assert outbox.archive(timedelta(days=7)) == 0
        clock.advance(days=8)
        assert outbox.cleanup_old_dead_events(older_than_days=1) == 1
        assert outbox.archive(timedelta(days=7)) == 1
        with pytest.raises(NotFound):
            outbox.get(2)


async def test_an_async_connection_is_refused(tmp_path: Path) -> None:
    """outbox.add refuses an async connection instead of silently dropping the event."""

    class AsyncConnection:
        __module__ = "psycopg"

        async def execute(self, *args: object) -> None:
            return None

    outbox = Outbox(SQLiteStore(tmp_path / "o.db"), publisher=lambda event: None)
    with pytest.raises(RedriveError, match="synchronous connection"):
        outbox.add(AsyncConnection(), "t", {})
