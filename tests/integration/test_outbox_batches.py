"""How a PostgreSQL dispatcher holds a batch: row locks while it delivers, a lease after
``hold``, nothing at all once its process is killed; and concurrent delivery of a batch.

The module doubles as the program of the killed dispatcher:
``python -m tests.integration.test_outbox_batches URL``.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from redrive.exceptions import ConfigError
from redrive.models import Event
from redrive.outbox import Outbox
from redrive.outbox.eager import gather_eagerly
from redrive.stores.postgres import PostgresStore
from redrive.stores.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]


def _add(url: str, outbox: Outbox, count: int) -> None:
    with psycopg.connect(url) as conn:
        for n in range(count):
            outbox.add(conn, "orders.created", {"n": n})


def _row(url: str, outbox_id: int) -> tuple[Any, ...]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT status, attempts, locked_by FROM redrive.redrive_outbox WHERE id = %s",
            (outbox_id,),
        ).fetchone()
    assert row is not None
    return tuple(row)


async def _until(condition: Any, what: str, timeout: float = 30.0) -> None:
    """Check ``condition()`` (in a thread) until it holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)  # polling interval of a condition check, not a sync point


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresStore]:
    """A migrated PostgreSQL store."""
    store = PostgresStore(postgres_url)
    yield store
    store.close()


class Blocking:
    """A publisher that waits until released, and says when it has an event."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.delivered: list[Event] = []

    async def __call__(self, event: Event) -> None:
        self.started.set()
        await self.release.wait()
        self.delivered.append(event)


@pytest.mark.postgres
class TestLockedBatches:
    async def test_rows_in_flight_are_locked_not_leased(
        self, store: PostgresStore, postgres_url: str
    ) -> None:
        """While a batch is delivered its rows carry no lease, yet no other dispatcher
        gets them (nor spins on them); the outcome is the only write."""
        publish = Blocking()
        first = Outbox(store, publisher=publish)
        second = Outbox(store, publisher=Blocking())
        _add(postgres_url, first, 1)
        task = asyncio.create_task(first.dispatch())
        await publish.started.wait()
        assert _row(postgres_url, 1) == ("pending", 0, None)
        began = second.clock.now()
        assert await second.dispatch() == 0
        # run() of the second waits for a NOTIFY or its poll, instead of spinning on
        # a row that is due but held.
        assert await second._next_wait(began) == second.poll_interval
        publish.release.set()
        assert await task == 1
        assert _row(postgres_url, 1) == ("done", 1, None)

    async def test_a_batch_slower_than_hold_is_leased_and_committed(
        self, store: PostgresStore, postgres_url: str
    ) -> None:
        """After ``hold`` the rows still in flight get a lease and the transaction ends;
        the lease keeps other dispatchers away until the delivery is recorded."""
        publish = Blocking()
        first = Outbox(store, publisher=publish, hold=timedelta(milliseconds=50))
        second = Outbox(store, publisher=Blocking())
        _add(postgres_url, first, 1)
        task = asyncio.create_task(first.dispatch())
        await _until(lambda: _row(postgres_url, 1)[2] == first.owner, "the lease")
        assert await second.dispatch() == 0
        publish.release.set()
        assert await task == 1
        assert _row(postgres_url, 1) == ("done", 1, None)
        assert len(publish.delivered) == 1

    async def test_rows_of_a_killed_dispatcher_are_free_at_once(
        self, store: PostgresStore, postgres_url: str
    ) -> None:
        """A dispatcher SIGKILLed mid-batch leaves no lease behind: its connection drops,
        the server rolls back, and another dispatcher delivers every row (long before
        the 5-minute lease a claimed row would have had)."""
        delivered: list[Event] = []

        async def publish(event: Event) -> None:
            delivered.append(event)

        outbox = Outbox(store, publisher=publish)
        _add(postgres_url, outbox, 20)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.integration.test_outbox_batches",
            postgres_url,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            assert await proc.stdout.readline() == b"delivering\n"
            proc.kill()
            await proc.wait()

            async def drained() -> bool:
                await outbox.dispatch()
                return len(delivered) == 20

            deadline = time.monotonic() + 30
            while not await drained():
                assert time.monotonic() < deadline, "the killed dispatcher's rows stayed locked"
                await asyncio.sleep(0.05)  # the server notices the dropped connection
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert sorted(e.payload["n"] for e in delivered) == list(range(20))
        assert {_row(postgres_url, i) for i in range(1, 21)} == {("done", 1, None)}


class TestHold:
    def test_hold_is_shorter_than_the_lease(self, sqlite_store: SQLiteStore) -> None:
        """By default hold is 10 s, or half a shorter lease; a hold as long as the lease
        is refused."""
        assert Outbox(sqlite_store).hold == timedelta(seconds=10)
        assert Outbox(sqlite_store, lease=timedelta(seconds=4)).hold == timedelta(seconds=2)
        with pytest.raises(ConfigError, match="hold"):
            Outbox(sqlite_store, lease=timedelta(seconds=4), hold=timedelta(seconds=4))


class TestGatherEagerly:
    async def test_deliveries_that_wait_overlap(self) -> None:
        """A delivery waiting on a later one in the same batch does not block it."""
        second_ran = asyncio.Event()
        order: list[str] = []

        async def first() -> None:
            await second_ran.wait()
            order.append("first")

        async def second() -> None:
            second_ran.set()
            order.append("second")

        await gather_eagerly([first(), second()])
        assert order == ["second", "first"]

    async def test_errors_and_cancellation_reach_the_deliveries(self) -> None:
        """An error of a waiting delivery is raised; cancelling the batch cancels those
        still waiting."""
        waiting, cancelled = asyncio.Event(), asyncio.Event()

        async def fails() -> None:
            await asyncio.sleep(0)
            raise RuntimeError("broker gone")

        async def waits() -> None:
            waiting.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

        with pytest.raises(RuntimeError, match="broker gone"):
            await gather_eagerly([fails()])
        task = asyncio.create_task(gather_eagerly([waits()]))
        await waiting.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cancelled.is_set()

    async def test_each_delivery_has_its_own_context(self) -> None:
        """Context variables set by one delivery are not seen by the next one."""
        var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
        seen: list[str] = []

        async def sets() -> None:
            var.set("set")

        async def reads() -> None:
            seen.append(var.get())

        await gather_eagerly([sets(), reads()])
        assert seen == ["unset"]
        assert var.get() == "unset"


def main() -> None:
    """Deliver one batch, announce it, and hang until killed."""
    url = sys.argv[1]

    async def hang(event: Event) -> None:
        print("delivering", flush=True)
        await asyncio.Event().wait()

    async def run() -> None:
        store = PostgresStore(url, migrate=False)
        await Outbox(store, publisher=hang).dispatch()

    asyncio.run(run())


if __name__ == "__main__":
    main()
