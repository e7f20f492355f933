"""Real local receivers for the alert sinks: an HTTP server and an SMTP server (aiosmtpd),
both on 127.0.0.1, plus a workload that leaves dead letters in a real SQLite file."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from redrive import EventBus, RetryPolicy
from redrive.service import DeadLetterQueue
from redrive.stores.base import Store
from redrive.stores.sqlite import SQLiteStore
from redrive.testing import FakeClock


@dataclasses.dataclass
class Request:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """An HTTP server that records POSTs and answers with the statuses it is told to."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.statuses: list[int] = []  # answered in order; 200 once empty
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.requests.append(Request(self.path, dict(self.headers), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def bodies(self, path: str | None = None) -> list[Any]:
        return [r.json() for r in self.requests if path is None or r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1."""
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (for timeouts)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def service(sqlite_store: SQLiteStore, clock: FakeClock) -> DeadLetterQueue:
    """The service on a real SQLite file, on the fake clock."""
    return DeadLetterQueue(sqlite_store, clock=clock, actor="tests")


class Workload:
    """Publishes events whose handler fails with a non-retriable error: each one is a
    dead letter at once, so tests set counts exactly."""

    def __init__(self, store: Store, clock: FakeClock) -> None:
        self.bus = EventBus(store, clock=clock, policy=RetryPolicy(max_attempts=1))
        self.topics: set[str] = set()

    async def dead(self, topic: str, n: int, error: str = "bad amount") -> None:
        if topic not in self.topics:
            self.topics.add(topic)

            def handle(event: Any) -> None:
                raise ValueError(f"{error}: {event.payload}")

            self.bus.subscribe(topic, handle, name=f"app.{topic}.handle")
        for i in range(n):
            await self.bus.publish(topic, {"n": i})


@pytest.fixture
async def workload(sqlite_store: SQLiteStore, clock: FakeClock) -> Any:
    """Makes dead letters through a real EventBus on the SQLite file."""
    work = Workload(sqlite_store, clock)
    yield work
    await work.bus.stop()


@pytest.fixture
def db_file(db_path: Path) -> Path:
    """The SQLite file the ``sqlite_store`` fixture uses."""
    return db_path
