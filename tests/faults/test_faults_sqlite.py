"""Faults on SQLite: publishers and workers SIGKILLed at random while workers race with
2 s leases, the outbox's dispatchers killed mid-batch, a wall-clock step during an
attempt, and a disk that fills. After each run every promise of the store is checked."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from redrive import Event, EventBus, RetryPolicy, open_store
from redrive.exceptions import StoreError
from redrive.models import Status
from redrive.stores.base import Filter
from redrive.stores.sqlite import SQLiteStore
from redrive.testing import FakeClock
from tests.faults.runner import (
    Report,
    Run,
    all_records,
    chaos,
    check,
    record_run,
    running,
    seed_for,
    unsettled,
)
from tests.faults.workload import LogHook

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
            store=store,
        )
        run.stop_all()
        run.drain("worker", lambda: unsettled(store) == 0)
    report = check(store, run.logs, stale=run.stale)
    record_run("sqlite bus: 2 publishers, 3 workers", seed, run.faults, report)
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
            store=store,
        )
        run.stop_all()

        def settled() -> bool:
            pending = [s for s in _outbox_rows(db).values() if s == "pending"]
            return not pending and unsettled(store) == 0

        run.drain("dispatcher", settled)
    report = check(store, run.logs, stale=run.stale, outbox_rows=_outbox_rows(db))
    record_run("sqlite outbox: 1 app, 2 dispatchers", seed, run.faults, report)
    store.close()
    assert report.violations == []
    assert report.published > 0 and report.records > 0


# -- a wall-clock step during an attempt (the library's FakeClock, in one process) ---------
def _two_workers(
    tmp_path: Path,
) -> tuple[FakeClock, SQLiteStore, list[EventBus], list[io.StringIO]]:
    clock = FakeClock()
    store = SQLiteStore(tmp_path / "redrive.db")
    logs = [io.StringIO(), io.StringIO()]
    buses = [EventBus(store, clock=clock, hooks=[LogHook(log)]) for log in logs]  # 60 s leases
    return clock, store, buses, logs


def _accepted_retries(logs: list[io.StringIO]) -> list[str]:
    return [
        line
        for log in logs
        for line in log.getvalue().splitlines()
        if line[0] in "SF" and line.split()[-1] == "claim"
    ]


async def test_clock_step_during_attempt_is_not_claimed_by_its_own_scheduler(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 61 s wall-clock step during a retry (60 s lease): the scheduler running the attempt
    does not claim it again, and its outcome is saved once."""
    seed = seed_for("clock-step-one")
    clock, store, (bus, _), logs = _two_workers(tmp_path)
    runs: list[int] = []

    async def handle(event: Event) -> None:
        runs.append(1)
        if len(runs) == 1:
            raise ConnectionError("downstream unavailable")
        clock.advance(61)  # a VM pause or an NTP step while the attempt runs
        runs.append(await bus.scheduler.run_once())  # a claim while the attempt is running

    bus.subscribe("t", handle, name="h", policy=RetryPolicy(initial_delay=1, jitter="none"))
    await bus.publish("t", {"n": 1})
    clock.advance(2)
    assert await bus.scheduler.run_once() == 1
    (record,) = store.find(Filter(), limit=5).items
    refused = caplog.text.count("was lost")
    record_run(
        "clock step during a retry, 1 scheduler",
        seed,
        Counter({"wall-clock step +61 s": 1}),
        Report(
            published=1,
            records=1,
            runs=2,
            retries_accepted=len(_accepted_retries(logs)),
            refused=refused,
            by_status=Counter([record.status.value]),
        ),
        lease=60,
    )
    await bus.stop()
    store.close()
    assert runs == [1, 1, 0]  # the claim during the attempt took nothing
    assert record.status == Status.RESOLVED and refused == 0
    assert len(_accepted_retries(logs)) == 1


async def test_clock_step_hands_the_attempt_over_and_fences_the_stale_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 61 s wall-clock step during a retry lets a second worker claim it (its lease is
    over); the stale run's failure is refused, the new run's success stands."""
    seed = seed_for("clock-step-two")
    clock, store, (first, second), logs = _two_workers(tmp_path)
    runs: list[str] = []

    async def handle(event: Event) -> None:
        runs.append("run")
        if len(runs) == 1:
            raise ConnectionError("downstream unavailable")
        if len(runs) == 2:  # the first worker's retry: the clock steps, the other claims
            clock.advance(61)
            runs.append(f"taken over: {await second.scheduler.run_once()}")
            raise ConnectionError("stale run fails late")

    for bus in (first, second):
        bus.subscribe("t", handle, name="h", policy=RetryPolicy(initial_delay=1, jitter="none"))
    await first.publish("t", {"n": 1})
    clock.advance(2)
    assert await first.scheduler.run_once() == 1
    (record,) = store.find(Filter(), limit=5).items
    refused = caplog.text.count("was lost")
    record_run(
        "clock step during a retry, 2 schedulers",
        seed,
        Counter({"wall-clock step +61 s": 1}),
        Report(
            published=1,
            records=1,
            runs=3,
            retries_accepted=len(_accepted_retries(logs)),
            refused=refused,
            by_status=Counter([record.status.value]),
        ),
        lease=60,
    )
    for bus in (first, second):
        await bus.stop()
    store.close()
    assert runs == ["run", "run", "run", "taken over: 1"]
    assert record.status == Status.RESOLVED  # the stale failure did not overwrite it
    assert refused == 1  # the stale run: fenced, the double run the step forced
    (accepted,) = _accepted_retries(logs)
    assert accepted.startswith("S ")


# -- a disk that fills, and one that fails --------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs mounted for the test (root only), unmounted after it."""
    where = tmp_path / "disk"
    where.mkdir()
    if os.geteuid() != 0:
        reason = "the disk-full case mounts a small tmpfs, which needs root"
        print(f"\n[faults] SKIPPED disk full: {reason}")
        pytest.skip(reason)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        reason = f"cannot mount a tmpfs here ({mount.stderr.strip()})"
        print(f"\n[faults] SKIPPED disk full: {reason}")
        pytest.skip(reason)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True, capture_output=True)


def _fill(path: Path, leave: int) -> None:
    """Write ``path`` until the disk is full, then give back ``leave`` bytes."""
    with open(path, "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass
        size = filler.tell()
    os.truncate(path, max(0, size - leave))


async def _publish_until_refused(
    bus: EventBus, numbers: range, pad: int, returned: list[int], errors: list[BaseException]
) -> None:
    """Publish ``{"n": n, "pad": ...}`` for each of ``numbers`` until three are refused:
    the numbers whose publish returned go to ``returned``, the refusals to ``errors``."""
    for n in numbers:
        try:
            await bus.publish("t", {"n": n, "pad": "x" * pad})
        except Exception as exc:
            errors.append(exc)
            if len(errors) == 3:
                return
        else:
            returned.append(n)


async def test_disk_full_refuses_cleanly_and_recovers(small_disk: Path) -> None:
    """SQLite on a disk that fills: publish fails with a StoreError (never a raw error),
    every publish that returned is stored, and once space is freed publishing works."""
    seed = seed_for("disk-full")
    store = SQLiteStore(small_disk / "redrive.db")
    bus = EventBus(store)

    def fail(event: Event) -> None:
        raise ConnectionError("downstream unavailable")

    bus.subscribe("t", fail, name="h", policy=RetryPolicy(initial_delay=3600))
    _fill(small_disk / "filler", leave=400_000)
    returned: list[int] = []
    errors: list[BaseException] = []
    await _publish_until_refused(bus, range(300), 8000, returned, errors)
    stored = sorted(r.event.payload["n"] for r in all_records(store))
    (small_disk / "filler").unlink()
    await bus.publish("t", {"n": 10_000})
    after = store.count(Filter())
    report = Report(
        published=len(returned) + 1,
        records=after,
        runs=len(returned) + len(errors) + 1,
        by_status=Counter({"scheduled": after}),
    )
    if not all(isinstance(e, StoreError) for e in errors):
        report.fail(f"raw errors on a full disk: {[type(e).__name__ for e in errors]}")
    record_run(
        "sqlite on a 3 MB tmpfs that fills", seed, Counter({"disk full": 1}), report, lease="-"
    )
    await bus.stop()
    with sqlite3.connect(small_disk / "redrive.db") as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    store.close()
    assert errors, "the disk never filled"
    assert [type(e).__name__ for e in errors if not isinstance(e, StoreError)] == []
    assert stored == returned  # what publish returned is stored, and nothing else
    assert after == len(returned) + 1 and integrity == "ok"


def _run(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def failing_disk(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """An ext4 file system on a loop device whose backing file is a sparse 128 MB image on
    a 16 MB tmpfs (root only): filling the tmpfs makes every later write of the loop device
    fail, which ext4 reports as EIO. Yields (the mount point, the tmpfs); all unmounted and
    detached after the test."""
    if os.geteuid() != 0:
        reason = "the failing disk needs a loop device and mounts, which need root"
        print(f"\n[faults] SKIPPED disk failing with EIO: {reason}")
        pytest.skip(reason)
    backing, mounted = tmp_path / "backing", tmp_path / "disk"
    backing.mkdir()
    mounted.mkdir()
    undo: list[list[str]] = []
    try:
        _run("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(backing))
        undo.append(["umount", "-l", str(backing)])
        image = backing / "disk.img"
        _run("truncate", "-s", "128m", str(image))
        _run("mkfs.ext4", "-q", "-F", str(image))
        loop = _run("losetup", "--find", "--show", str(image))
        undo.append(["losetup", "-d", loop])
        _run("mount", loop, str(mounted))
        undo.append(["umount", "-l", str(mounted)])
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        for command in reversed(undo):
            subprocess.run(command, capture_output=True)
        stderr = getattr(exc, "stderr", "") or str(exc)
        reason = f"cannot make a loop device here ({stderr.strip()})"
        print(f"\n[faults] SKIPPED disk failing with EIO: {reason}")
        pytest.skip(reason)
    try:
        yield mounted, backing
    finally:
        for command in reversed(undo):
            subprocess.run(command, capture_output=True)


async def test_disk_failing_with_eio(failing_disk: tuple[Path, Path]) -> None:
    """SQLite on a disk that starts failing with EIO mid-run: publish fails with a
    StoreError (never a raw error), every publish that returned before is stored, and the
    file stays intact (the file system goes read-only: a failed disk stays failed)."""
    seed = seed_for("disk-eio")
    mounted, backing = failing_disk
    store = SQLiteStore(mounted / "redrive.db")
    bus = EventBus(store)

    def fail(event: Event) -> None:
        raise ConnectionError("downstream unavailable")

    bus.subscribe("t", fail, name="h", policy=RetryPolicy(initial_delay=3600))
    returned: list[int] = []
    errors: list[BaseException] = []
    for n in range(20):
        await bus.publish("t", {"n": n})
        returned.append(n)
    _fill(backing / "filler", leave=0)  # from here on every write of the device fails
    await _publish_until_refused(bus, range(20, 400), 4000, returned, errors)
    stored = sorted(r.event.payload["n"] for r in all_records(store))
    await bus.stop()
    store.close()
    with sqlite3.connect(f"file:{mounted / 'redrive.db'}?mode=ro", uri=True) as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    report = Report(
        published=len(returned),
        records=len(stored),
        runs=len(returned) + len(errors),
        by_status=Counter({"scheduled": len(stored)}),
    )
    if not all(isinstance(e, StoreError) for e in errors):
        report.fail(f"raw errors on a failing disk: {[type(e).__name__ for e in errors]}")
    record_run(
        "sqlite on a loop device that fails (EIO)",
        seed,
        Counter({"disk EIO": 1}),
        report,
        lease="-",
    )
    assert errors, "the disk never failed"
    assert [type(e).__name__ for e in errors if not isinstance(e, StoreError)] == []
    assert "disk I/O error" in str(errors[0])
    assert stored == returned  # what publish returned is stored, and nothing else
    assert integrity == "ok"
