"""What the pipeline benchmark starts besides PostgreSQL (run in redrive's venv): Redis
servers, the peers' virtualenv, and the fsync-heavy writer of ``--contended``.

Every process started here is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
VENV = BENCH / ".peers-venv"
PEER_PACKAGES = (
    "dramatiq[redis]==2.2.1",
    "celery[redis]==5.7.0",
    "procrastinate==3.10.0",
    "psycopg[binary]>=3.1",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_pid(pid: int, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
    """Send ``sig`` to ``pid``, wait for it to exit, SIGKILL it after ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)  # polling the process table with a deadline
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class RedisServer:
    """``redis-server`` on 127.0.0.1, a free port, its own temp dir.

    :param fsync: ``None``: no persistence at all (no RDB, no AOF); ``"always"``: AOF with
        ``appendfsync always`` (each write is fsynced before the reply).
    """

    def __init__(self, fsync: str | None = None) -> None:
        self.fsync = fsync
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            subprocess.run(
                ["apt-get", "install", "-y", "redis-server"],
                check=True,
                capture_output=True,
                timeout=600,
            )
            binary = "/usr/bin/redis-server"
        args = [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]
        if self.fsync:
            args += ["--appendonly", "yes", "--appendfsync", self.fsync]
        else:
            args += ["--appendonly", "no"]
        log = open(self.dir / "redis.log", "wb")  # noqa: SIM115 (the server's lifetime)
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return self
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server did not start: {(self.dir / 'redis.log').read_text()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc.pid)
            self.proc.wait(timeout=10)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


WRITER = """
import os, sys
path = sys.argv[1]
block = os.urandom(64 * 1024)
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
n = 0
while True:
    os.write(fd, block)
    os.fsync(fd)
    n += 1
    if n % 256 == 0:  # keep the file at 16 MB
        os.lseek(fd, 0, 0)
"""


class DiskWriter:
    """A process that writes 64 KB and fsyncs, in a loop, on the benchmark's filesystem."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-contention-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DiskWriter:
        self.proc = subprocess.Popen([sys.executable, "-c", WRITER, str(self.dir / "load")])
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc.pid)
            self.proc.wait(timeout=10)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def peers_python() -> Path:
    """The peers' virtualenv's python, created and filled on first use."""
    python = VENV / "bin" / "python"
    marker = VENV / ".installed"
    wanted = "\n".join(PEER_PACKAGES)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
    if not marker.exists() or marker.read_text() != wanted:
        print(f"installing the peers into {VENV} ...", flush=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True, timeout=1200
        )
        marker.write_text(wanted)
    return python
