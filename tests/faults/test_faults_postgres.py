"""Faults on PostgreSQL: publishers, workers and outbox dispatchers SIGKILLed at random
while workers race with 2 s leases, and the server restarted with ``-m immediate``
(a crash: no checkpoint, every connection cut) in the middle of the run."""

from __future__ import annotations

import asyncio
import io
import shlex
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from redrive import Event, EventBus, RetryPolicy, open_store
from redrive.models import DeadLetter, Status
from redrive.stores.base import Filter
from tests.faults.runner import (
    Report,
    Run,
    chaos,
    check,
    record_run,
    running,
    seed_for,
    unsettled,
)
from tests.faults.workload import LogHook
from tests.helpers import eventually
from tests.pg_server import PG_BIN, PgServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

LEASE = 4.0
"""Leases of the strict PostgreSQL runs: longer than an immediate restart (0.5-1.5 s here,
with ``recovery_init_sync_method=syncfs``) plus the reconnect after it (at most
``connector.MAX_BACKOFF``), from any point between two heartbeats (a third of the lease).
``test_short_leases_across_a_restart_are_fenced`` keeps 2 s leases, where a slow restart
can outlast a lease: that run counts refused outcomes instead of failing on them."""


@pytest.fixture(scope="module")
def server() -> Iterator[PgServer]:
    """A PostgreSQL server of this module's own: its restarts touch no other test."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15 is not installed ({PG_BIN}); run scripts/test to install it")
    pg = PgServer(durable=True).start()  # fsync and synchronous commits: see crash_restart
    with psycopg.connect(pg.admin_url, autocommit=True) as conn:
        # Crash recovery first fsyncs every file of the data directory one by one (2-3 s
        # on this machine); one syncfs() of the file system is as durable and takes 0.1 s.
        conn.execute("ALTER SYSTEM SET recovery_init_sync_method = 'syncfs'")
    try:
        yield pg
    finally:
        pg.stop()


def crash_restart(pg: PgServer, run: Run) -> None:
    """``pg_ctl restart -m immediate``: the server dies without a checkpoint, then recovers.

    The server must be durable (``PgServer(durable=True)``): with the test default,
    ``synchronous_commit=off``, a crash drops transactions the server already reported
    committed (a claim, a recorded failure), which no client can defend against.
    """
    pg._run(
        str(PG_BIN / "pg_ctl"),
        "-D",
        str(pg.data),
        "-m",
        "immediate",
        "-w",
        "-t",
        "60",
        "-l",
        str(pg.dir / "server.log"),
        "restart",
    )
    pg.pid = int((pg.data / "postmaster.pid").read_text().split()[0])
    run.faults["pg restart -m immediate"] += 1


def _outbox_rows(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT event_id, status FROM redrive.redrive_outbox").fetchall()
    return {str(event_id): str(status) for event_id, status in rows}


def test_bus_with_kills_and_an_immediate_restart(server: PgServer, tmp_path: Path) -> None:
    """Two publishers and three workers with 2 s leases, SIGKILLed at random, and the
    server crash-restarted mid-run: every failure whose publish returned is recorded
    once, each schedule runs once (no outcome refused), and the counts agree."""
    seed = seed_for("pg-bus")
    url = server.create_database()
    store = open_store(url)
    run = Run("pg-bus", url, tmp_path / "logs", seed, lease=LEASE)
    with running(run):
        chaos(
            run,
            publisher="publish",
            publishers=2,
            events=40,
            consumer="worker",
            consumers=3,
            kills=4,
            store=store,
            midway=lambda: crash_restart(server, run),
        )
        run.stop_all()
        run.drain("worker", lambda: unsettled(store) == 0)
    report = check(store, run.logs, stale=run.stale, lease=run.lease)
    record_run("postgres bus: 2 publishers, 3 workers", seed, run.faults, report, lease=LEASE)
    store.close()
    server.drop_database(url)
    assert report.violations == []
    assert report.published > 0 and report.records > 0


def test_outbox_with_kills_and_an_immediate_restart(server: PgServer, tmp_path: Path) -> None:
    """An app adding to the outbox and two dispatchers, SIGKILLed at random, and the server
    crash-restarted mid-run: every committed event is delivered, and no (event, handler)
    is recorded twice however often a batch was redelivered."""
    seed = seed_for("pg-outbox")
    url = server.create_database()
    store = open_store(url)
    run = Run("pg-outbox", url, tmp_path / "logs", seed, lease=LEASE)
    with running(run):
        chaos(
            run,
            publisher="outbox-add",
            publishers=1,
            events=60,
            consumer="dispatcher",
            consumers=2,
            kills=5,
            store=store,
            midway=lambda: crash_restart(server, run),
        )
        run.stop_all()

        def settled() -> bool:
            pending = [s for s in _outbox_rows(url).values() if s == "pending"]
            return not pending and unsettled(store) == 0

        run.drain("dispatcher", settled)
    report = check(store, run.logs, stale=run.stale, lease=run.lease, outbox_rows=_outbox_rows(url))
    record_run("postgres outbox: 1 app, 2 dispatchers", seed, run.faults, report, lease=LEASE)
    store.close()
    server.drop_database(url)
    assert report.violations == []
    assert report.published > 0 and report.records > 0


def test_short_leases_across_a_restart_are_fenced(server: PgServer, tmp_path: Path) -> None:
    """With 2 s leases a crash-restart slower than the lease's last two thirds outlasts a
    live worker's lease, so another worker may run the attempt again: the stale outcome is
    then refused (fenced, counted in the table), and still nothing is lost, recorded twice
    or left retrying, and the counts agree."""
    seed = seed_for("pg-short-lease")
    url = server.create_database()
    store = open_store(url)
    run = Run("pg-short-lease", url, tmp_path / "logs", seed, lease=2)
    with running(run):
        chaos(
            run,
            publisher="publish",
            publishers=1,
            events=40,
            consumer="worker",
            consumers=2,
            kills=2,
            store=store,
            midway=lambda: crash_restart(server, run),
        )
        run.stop_all()
        run.drain("worker", lambda: unsettled(store) == 0)
    report = check(store, run.logs, stale=run.stale, lease=run.lease, refusals_expected=True)
    record_run("postgres bus: 1 publisher, 2 workers", seed, run.faults, report, lease=2)
    store.close()
    server.drop_database(url)
    assert report.violations == []
    assert report.published > 0 and report.records > 0


def _stop_start(pg: PgServer, outage: float) -> None:
    """``pg_ctl stop -m immediate`` (a crash: no checkpoint, every connection cut), the
    server kept down for ``outage`` seconds, then started again (crash recovery)."""
    log = str(pg.dir / "server.log")
    ctl = (str(PG_BIN / "pg_ctl"), "-D", str(pg.data), "-w", "-t", "60", "-l", log)
    command = shlex.split((pg.data / "postmaster.opts").read_text())
    options = shlex.join(command[3:])  # the server's options, after ``postgres -D DIR``
    pg._run(*ctl, "-m", "immediate", "stop")
    time.sleep(outage)  # the outage's length: the fault itself, not a synchronisation
    pg._run(*ctl, "-o", options, "start")
    pg.pid = int((pg.data / "postmaster.pid").read_text().split()[0])


class _TwoWorkers:
    """Two workers (buses on stores of their own) and a watching store on a fresh database,
    for the live-lease runs over one record: each worker logs its accepted outcomes."""

    def __init__(self, server: PgServer, lease: timedelta) -> None:
        self.server, self.lease = server, lease
        self.url = server.create_database()
        self.stores = [open_store(self.url), open_store(self.url)]
        self.watch = open_store(self.url)
        self.logs = [io.StringIO(), io.StringIO()]
        self.buses = [
            EventBus(store, lease=lease, poll_interval=0.1, hooks=[LogHook(log)])
            for store, log in zip(self.stores, self.logs, strict=True)
        ]

    def leased(self) -> datetime:
        """The one record's lease (the earliest time when it has none)."""
        (record,) = self.watch.find(Filter(), limit=2).items
        return record.lease_expires_at or datetime.min.replace(tzinfo=UTC)

    def subscribe(self, handler: Callable[[str], Callable[[Event], Awaitable[None]]]) -> None:
        """``handler("first")`` on the first worker, ``handler("second")`` on the second."""
        for bus, who in zip(self.buses, ("first", "second"), strict=True):
            bus.subscribe("t", handler(who), name="h", policy=RetryPolicy(initial_delay=0.05))

    async def resolved(self) -> None:
        """Until the record is resolved."""
        await eventually(
            lambda: self.watch.count(Filter(statuses=(Status.RESOLVED,))) == 1, timeout=30
        )

    def finish(
        self, name: str, seed: int, fault: str, runs: list[str], caplog: pytest.LogCaptureFixture
    ) -> tuple[DeadLetter, int, int]:
        """Record the run in the table, close the stores and drop the database: the record,
        the accepted claim outcomes and the refused ones."""
        (record,) = self.watch.find(Filter(), limit=2).items
        accepted = [
            line
            for log in self.logs
            for line in log.getvalue().splitlines()
            if line[0] in "SF" and line.endswith(" claim")
        ]
        refused = caplog.text.count("was lost")
        report = Report(
            published=1,
            records=1,
            runs=len(runs),
            retries_accepted=len(accepted),
            refused=refused,
            by_status=Counter([record.status.value]),
        )
        record_run(name, seed, Counter({fault: 1}), report, lease=self.lease.total_seconds())
        for store in (*self.stores, self.watch):
            store.close()
        self.server.drop_database(self.url)
        return record, len(accepted), refused


async def test_a_live_attempt_keeps_its_lease_across_an_immediate_restart(
    server: PgServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A retry holding a 5.5 s lease while the server is crash-stopped, kept down 3 s and
    started again: the heartbeat renews the lease as soon as the server answers, not when
    the pool's reconnect backoff (1 s, 2 s, 4 s ...) next tries, about 7 s after the crash,
    so a second worker started right after the restart never claims it: one run, its
    outcome accepted."""
    seed = seed_for("pg-lease-across-restart")
    lease = timedelta(seconds=5.5)
    workers = _TwoWorkers(server, lease)
    runs: list[str] = []
    down: list[float] = []  # how long the server took to answer again
    restarted = asyncio.Event()

    def handler(who: str) -> Callable[[Event], Awaitable[None]]:
        async def handle(event: Event) -> None:
            runs.append(who)
            if len(runs) == 1:
                raise ConnectionError("the first run fails")
            if who == "first" and len(runs) == 2:
                claimed = await asyncio.to_thread(workers.leased)
                # Just after a heartbeat (the lease moved on): the lease has 2.5 s to go.
                await eventually(lambda: workers.leased() > claimed, timeout=10)
                began = time.monotonic()
                await asyncio.to_thread(_stop_start, server, 3.0)
                down.append(time.monotonic() - began)
                restarted.set()
                await asyncio.sleep(lease.total_seconds() * 0.8)  # the attempt outlasts its lease

        return handle

    workers.subscribe(handler)
    first, second = workers.buses
    async with first:
        await first.publish("t", {"n": 1})
        await restarted.wait()
        async with second:  # a fresh worker, connected at once, racing for the record
            await workers.resolved()
    record, accepted, refused = workers.finish(
        "postgres: a live retry across a 3 s crash-stop",
        seed,
        "pg stop -m immediate, 3 s down, start",
        runs,
        caplog,
    )
    print(f"[faults] the server answered again {down[0]:.2f} s after the crash")
    assert record.status == Status.RESOLVED and accepted == 1  # fenced in any case
    if down[0] > lease.total_seconds() - 0.3:  # a loaded machine: no heartbeat could hold it
        pytest.skip(f"the restart took {down[0]:.1f} s, past the {lease} lease: not a check")
    assert runs == ["first", "first"]  # no double run: the second worker never got it
    assert refused == 0


async def test_a_heartbeat_held_up_by_a_row_lock_renews_a_whole_lease(
    server: PgServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Another transaction holds the record's row for 4.5 s from just after a heartbeat, so
    the next heartbeat waits 3.5 s for it, longer than the 3 s lease. The waiting heartbeat
    gets the row first, and its lease runs from then, so a second worker polling for the
    record never finds its lease lapsed: one run, its outcome accepted. (A lease computed
    before the wait was written already lapsed, and the second worker could claim the
    record before the scheduler's next heartbeat.)"""
    seed = seed_for("pg-heartbeat-behind-a-lock")
    lease = timedelta(seconds=3)
    workers = _TwoWorkers(server, lease)
    runs: list[str] = []
    holding, released = asyncio.Event(), asyncio.Event()

    def hold_the_row(record_id: str) -> None:
        with psycopg.connect(workers.url) as conn:
            conn.execute(
                "SELECT 1 FROM redrive.redrive_dead_letters WHERE id = %s FOR UPDATE", (record_id,)
            )
            time.sleep(lease.total_seconds() * 1.5)  # the lock's length: the fault itself
        # the transaction ends here: the waiting heartbeat gets through

    def handler(who: str) -> Callable[[Event], Awaitable[None]]:
        async def handle(event: Event) -> None:
            runs.append(who)
            if len(runs) == 1:
                raise ConnectionError("the first run fails")
            if who == "first" and len(runs) == 2:
                claimed = await asyncio.to_thread(workers.leased)
                await eventually(lambda: workers.leased() > claimed, timeout=10)  # after a beat
                (record,) = await asyncio.to_thread(
                    lambda: workers.watch.find(Filter(), limit=2).items
                )
                holding.set()
                await asyncio.to_thread(hold_the_row, record.id)
                released.set()
                await asyncio.sleep(lease.total_seconds())  # the attempt outlasts its lease

        return handle

    workers.subscribe(handler)
    first, second = workers.buses
    async with first:
        await first.publish("t", {"n": 1})
        await holding.wait()
        async with second:  # a second worker, racing for the record from now on
            await released.wait()
            await workers.resolved()
    record, accepted, refused = workers.finish(
        "postgres: a heartbeat 3.5 s behind a row lock",
        seed,
        "row lock on the record for 4.5 s",
        runs,
        caplog,
    )
    assert runs == ["first", "first"]  # no double run: the second worker never got it
    assert refused == 0 and record.status == Status.RESOLVED and accepted == 1
