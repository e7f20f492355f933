"""A process started while PostgreSQL is down waits for it (for the store's
``retry_timeout``), says so in one line on stderr, and comes up when the database does."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.cli.cli_support import REDRIVE, ROOT
from tests.helpers import free_port, wait_for
from tests.pg_server import PgServer

pytestmark = pytest.mark.postgres


@pytest.fixture
def paused() -> Iterator[tuple[PgServer, str]]:
    """A server with a migrated database, stopped; the test resumes it."""
    server = PgServer().start()
    try:
        url = server.create_database()
        from redrive.bootstrap import open_store

        open_store(url).close()  # migrated, so only the outage is in the way
        server.pause()
        yield server, f"{url}?retry_timeout=60"
    finally:
        if server.pid is not None and not _alive(server.pid):
            server.pid = None
        server.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Lines:
    """Collects a process's stderr lines as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stderr is not None
        stream = process.stderr
        self.thread = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self.thread.start()

    def waiting(self) -> list[str]:
        return [line for line in list(self.lines) if "is unreachable" in line]


def _start(*args: str, url: str) -> tuple[subprocess.Popen[str], Lines]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDRIVE_")}
    env.update(REDRIVE_STORE_URL=url, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [REDRIVE, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, Lines(process)


def test_stats_waits_for_the_database(paused: tuple[PgServer, str]) -> None:
    """``redrive stats`` says it is waiting, then answers once the server is back."""
    server, url = paused
    process, err = _start("stats", "--json", url=url)
    try:
        wait_for(err.waiting, timeout=30, what="a waiting line on stderr")
        assert process.poll() is None
        server.resume()
        assert process.wait(timeout=60) == 0
        err.thread.join(timeout=10)
        assert len(err.waiting()) == 1, err.lines
        assert "retrying for up to 60s" in err.waiting()[0]
        assert process.stdout is not None and '"counts"' in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def test_worker_waits_for_the_database(paused: tuple[PgServer, str]) -> None:
    """``redrive worker`` waits, then reports ready once the server is back."""
    server, url = paused
    process, err = _start("worker", "--app", "redrive.ops.cli.demo_app:fixed_bus", url=url)
    try:
        wait_for(err.waiting, timeout=30, what="a waiting line on stderr")
        server.resume()
        wait_for(lambda: any("worker ready" in line for line in err.lines), timeout=60)
        assert len(err.waiting()) == 1, err.lines
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def test_serve_waits_for_the_database(paused: tuple[PgServer, str]) -> None:
    """``redrive serve`` waits, then answers /readyz once the server is back."""
    server, url = paused
    port = free_port()
    process, err = _start("serve", "--port", str(port), url=url)
    try:
        wait_for(err.waiting, timeout=30, what="a waiting line on stderr")
        server.resume()

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=60, what="/readyz answering 200")
        assert len(err.waiting()) == 1, err.lines
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
