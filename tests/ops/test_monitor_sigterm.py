"""SIGTERM during ``redrive monitor --once`` (a real process): the run gives the replica lock
up before it exits, so the next ``--once`` (a cron job's next tick) evaluates at once.

The webhook is a socket the test holds: the run is caught in its delivery (the lock taken,
the alert decided), which is where a supervisor's SIGTERM hurts most. Synchronised on the
accepted connection and on the process's own output, never on a sleep."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from redrive.models import utcnow
from redrive.ops.alerts.state import StateStore
from redrive.service import DeadLetterQueue, make_filter
from redrive.stores.sqlite import SQLiteStore
from tests.ops.conftest import Receiver, Workload
from tests.ops.test_cli_alerts import redrive

COMMAND = [sys.executable, "-c", "from redrive.ops.cli import main; main()"]


class HeldHook:
    """A webhook endpoint that takes one request and answers only when told to."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(30)

    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def take(self) -> tuple[socket.socket, dict[str, object]]:
        """Wait for the request; return the connection (unanswered) and its JSON body."""
        conn, _ = self.sock.accept()
        conn.settimeout(30)
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += conn.recv(65536)
        return conn, json.loads(body)

    @staticmethod
    def answer(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def held() -> Iterator[HeldHook]:
    hook = HeldHook()
    yield hook
    hook.close()


def write_config(tmp_path: Path, db_path: Path) -> Path:
    path = tmp_path / "redrive.toml"
    path.write_text(
        f'store_url = "sqlite:///{db_path}"\n'
        "[topics.rfq.alerts]\nwarn_count = 10\ncritical_count = 50\n"
        "[alerts.defaults]\nmax_age = false\n"
        '[alerts.sinks.hook]\ntype = "webhook"\nurl_env = "HOOK_URL"\nretries = 0\n'
        "timeout = 60\n"
    )
    return path


def start_once(config: Path, tmp_path: Path, url: str) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REDRIVE_")}
    environ["HOOK_URL"] = url
    return subprocess.Popen(
        [*COMMAND, "--config", str(config), "monitor", "--once"],
        cwd=tmp_path,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stderr_lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's stderr, a line at a time, as it comes (read by a thread)."""
    lines: queue.Queue[str] = queue.Queue()
    assert process.stderr is not None
    stream = process.stderr

    def read() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def wait_for_line(lines: queue.Queue[str], text: str) -> str:
    seen: list[str] = []
    while True:
        try:
            line = lines.get(timeout=30)
        except queue.Empty:
            raise AssertionError(f"no {text!r} on stderr; saw {seen}") from None
        seen.append(line)
        if text in line:
            return line


def lock_held(store: SQLiteStore) -> bool:
    holder = StateStore(DeadLetterQueue(store)).holder()
    return holder is not None and holder[1] is not None and holder[1] > utcnow()


@pytest.mark.parametrize("signals", [1, 2])
async def test_sigterm_during_monitor_once_releases_the_lock(
    workload: Workload,
    receiver: Receiver,
    held: HeldHook,
    tmp_path: Path,
    db_path: Path,
    sqlite_store: SQLiteStore,
    signals: int,
) -> None:
    """One SIGTERM: the delivery in progress finishes (the alert arrives), then the lock
    goes. Two: the run stops at once (exit 143), and the lock goes all the same. Then the
    next ``--once`` evaluates at once: the records resolved, it sends ``resolved``."""
    config = write_config(tmp_path, db_path)
    await workload.dead("rfq", 12)
    process = start_once(config, tmp_path, held.url())
    lines = stderr_lines(process)
    try:
        conn, alert = held.take()  # the run is inside its delivery now
        assert "rfq" in json.dumps(alert)
        assert lock_held(sqlite_store)
        process.send_signal(signal.SIGTERM)
        wait_for_line(lines, "SIGTERM: finishing the evaluation in progress")
        if signals == 2:
            process.send_signal(signal.SIGTERM)
        else:
            held.answer(conn)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    if signals == 1:
        assert process.returncode == 0
        assert "[WARNING] rfq: 12 dead letters" in out
    else:
        assert process.returncode == 143
        conn.close()
    assert not lock_held(sqlite_store)

    DeadLetterQueue(sqlite_store).resolve(where=make_filter(topic="rfq"))
    second = redrive(
        "--config", str(config), "monitor", "--once", cwd=tmp_path, env={"HOOK_URL": receiver.url()}
    )
    assert second.returncode == 0, second.stderr
    assert "RESOLVED" in second.stdout.upper(), second.stdout
    assert len(receiver.bodies()) == 1
