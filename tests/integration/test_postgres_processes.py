"""Many real processes on one PostgreSQL store: workers, operators, and a worker killed.

The test module doubles as the program the processes run:
``python -m tests.integration.test_postgres_processes ROLE URL``. Workers record each
handler run in a ``runs`` table, so the test can count how often every event ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from redrive.models import Event, Status, utcnow
from redrive.stores.base import Filter
from redrive.stores.postgres import PostgresStore
from tests.factories import make_record
from tests.helpers import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TOPIC, HANDLER = "jobs", "jobs.run"
ROOT = Path(__file__).resolve().parents[2]


# -- the programs the processes run ------------------------------------------------------
async def _work(url: str, *, slow: bool) -> None:
    from redrive import EventBus

    store = PostgresStore(url, migrate=False)
    lease = timedelta(seconds=2 if slow else 60)
    bus = EventBus(store, poll_interval=0.5, concurrency=20, lease=lease)
    runs = psycopg.connect(url, autocommit=True)
    lock = threading.Lock()

    def run(event: Event) -> None:
        with lock:
            runs.execute(
                "INSERT INTO runs (event_id, pid, phase) VALUES (%s, %s, 'start')",
                (event.id, os.getpid()),
            )
        if slow:
            threading.Event().wait(3600)  # stuck until SIGKILL
        with lock:
            runs.execute(
                "INSERT INTO runs (event_id, pid, phase) VALUES (%s, %s, 'done')",
                (event.id, os.getpid()),
            )

    bus.subscribe(TOPIC, run, name=HANDLER)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with bus:
        print("ready", flush=True)
        await stop.wait()
    store.close()


def _operate(url: str) -> None:
    from redrive.service import DeadLetterQueue

    store = PostgresStore(url, migrate=False)
    result = DeadLetterQueue(store, actor=f"op{os.getpid()}").retry(
        where=Filter(statuses=(Status.DEAD,)), force=True
    )
    print(result.changed, flush=True)
    store.close()


def main() -> None:
    role, url = sys.argv[1], sys.argv[2]
    if role == "operator":
        _operate(url)
    else:
        asyncio.run(_work(url, slow=role == "slow"))


# -- the tests ----------------------------------------------------------------------------
def _spawn(role: str, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.test_postgres_processes", role, url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the worker's bus has started
    assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line


def _poll(check: Callable[[], object], timeout: float = 60) -> bool:
    try:
        wait_for(check, timeout=timeout, interval=0.1)
    except AssertionError:
        return False
    return True


@pytest.fixture
def shared(postgres_url: str) -> Iterator[tuple[str, PostgresStore]]:
    """A migrated store plus the ``runs`` table the workers write to."""
    store = PostgresStore(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.runs (event_id text, pid int, phase text)")
    yield postgres_url, store
    store.close()


@contextlib.contextmanager
def _workers(url: str, count: int) -> Iterator[list[subprocess.Popen[str]]]:
    procs = [_spawn("worker", url) for _ in range(count)]
    try:
        for proc in procs:
            _wait_ready(proc)
        yield procs
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.communicate(timeout=30)  # also closes the pipes


def _runs(url: str, phase: str) -> list[tuple[str, int]]:
    with psycopg.connect(url) as conn:
        sql = "SELECT event_id, count(*) FROM public.runs WHERE phase = %s GROUP BY event_id"
        return [(e, int(n)) for e, n in conn.execute(sql, (phase,)).fetchall()]


def test_four_workers_two_operators_run_each_replay_once(
    shared: tuple[str, PostgresStore],
) -> None:
    """Two operators replaying everything at once and four workers: each record runs once."""
    url, store = shared
    records = [make_record(topic=TOPIC, handler=HANDLER) for _ in range(300)]
    store.add(records)
    with _workers(url, 4):
        operators = [_spawn("operator", url) for _ in range(2)]
        outputs = [proc.communicate(timeout=60) for proc in operators]
        assert [proc.returncode for proc in operators] == [0, 0], outputs
        assert sum(int(out) for out, _ in outputs) == len(records)  # CAS: one replay each
        resolved = Filter(statuses=(Status.RESOLVED,))
        assert _poll(lambda: store.count(resolved) == len(records))
    done = _runs(url, "done")
    assert len(done) == len(records)
    assert {n for _, n in done} == {1}
    assert {e for e, _ in done} == {r.event.id for r in records}


def test_worker_killed_mid_batch_loses_nothing(shared: tuple[str, PostgresStore]) -> None:
    """Records a SIGKILLed worker held are run by the others once its leases expire."""
    url, store = shared
    now = utcnow()
    records = [
        make_record(topic=TOPIC, handler=HANDLER, status=Status.SCHEDULED, next_attempt_at=now)
        for _ in range(60)
    ]
    store.add(records)
    slow = _spawn("slow", url)
    try:
        _wait_ready(slow)
        assert _poll(lambda: len(_runs(url, "start")) >= 5)  # it is inside a batch
    finally:
        slow.send_signal(signal.SIGKILL)
        slow.communicate(timeout=30)
    held = store.count(Filter(statuses=(Status.RETRYING,)))
    assert held > 0
    with _workers(url, 2):
        resolved = Filter(statuses=(Status.RESOLVED,))
        assert _poll(lambda: store.count(resolved) == len(records))
    done = _runs(url, "done")
    assert {e for e, _ in done} == {r.event.id for r in records}
    assert {n for _, n in done} == {1}


if __name__ == "__main__":
    main()
