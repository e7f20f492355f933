"""Faults on PostgreSQL: publishers, workers and outbox dispatchers SIGKILLed at random
while workers race with 2 s leases, and the server restarted with ``-m immediate``
(a crash: no checkpoint, every connection cut) in the middle of the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from redrive import open_store
from tests.faults.runner import Run, chaos, check, record_run, running, seed_for, unsettled
from tests.pg_server import PG_BIN, PgServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

LEASE = 4.0
"""Leases of the strict PostgreSQL runs: longer than an immediate restart *and* the
connection pool's reconnect backoff after it (psycopg_pool waits 1 s, then 2 s, ...
between failed reconnects, and a heartbeat caught in it renews late; see
``tests/faults/probe_heartbeat.py``). ``test_short_leases_across_a_restart_are_fenced``
keeps 2 s leases."""


@pytest.fixture(scope="module")
def server() -> Iterator[PgServer]:
    """A PostgreSQL server of this module's own: its restarts touch no other test."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15 is not installed ({PG_BIN}); run scripts/test to install it")
    pg = PgServer(durable=True).start()  # fsync and synchronous commits: see crash_restart
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
    """With 2 s leases a crash-restart can stall a live worker's heartbeat (in the pool's
    reconnect backoff) past its lease, so another worker may run the attempt again: the
    stale outcome is then refused (fenced, counted in the table), and still nothing is
    lost, recorded twice or left retrying, and the counts agree."""
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
