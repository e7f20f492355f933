"""A real PostgreSQL server for the tests: started once per session, a fresh database per test.

Registered as a pytest plugin in ``tests/conftest.py``. The server runs from a temp dir
under /tmp (owned by the ``postgres`` user when the tests run as root, since PostgreSQL
refuses to run as root), listens on 127.0.0.1 on a free port, and is stopped by its PID.
Benchmarks import :class:`PgServer` too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port

PG_BIN = Path(os.environ.get("REDRIVE_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PgServer:
    """One PostgreSQL cluster in a temp dir.

    :param durable: keep fsync on (benchmarks); tests turn it off for speed, since a
        crash of the test machine loses nothing that matters.
    """

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="redrive-pg-"))
        self.data = self.dir / "data"
        self.pid: int | None = None

    @property
    def admin_url(self) -> str:
        """A URL for the superuser's ``postgres`` database."""
        return self.url("postgres")

    def url(self, database: str) -> str:
        """A URL for ``database`` as the superuser (trust authentication)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> PgServer:
        """initdb, then start the server and wait until it accepts connections."""
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        options = [
            f"-k {self.dir}",
            "-c listen_addresses=127.0.0.1",
            f"-p {self.port}",
            "-c max_connections=200",
            "-c shared_buffers=128MB",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.dir / "server.log"),
            "-o",
            " ".join(options),
            "start",
        )
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
        return self

    def stop(self) -> None:
        """Stop the server by its PID (fast shutdown), wait for it, remove the temp dir."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGINT)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and _alive(self.pid):
                time.sleep(0.05)  # polling the process table with a deadline
            self.pid = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def restart(self) -> None:
        """Stop the server (fast shutdown, connections dropped) and start it again."""
        assert self.pid is not None
        os.kill(self.pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(self.pid):
            time.sleep(0.05)
        options = [f"-k {self.dir}", "-c listen_addresses=127.0.0.1", f"-p {self.port}"]
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.dir / "server.log"),
            "-o",
            " ".join(options),
            "start",
        )
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh database; return its URL."""
        import psycopg
        from psycopg import sql

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop the database of ``url``, closing whatever connections it still has."""
        import psycopg
        from psycopg import sql

        name = url.rsplit("/", 1)[1].split("?", 1)[0]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PgServer]:
    """A PostgreSQL server for the whole session, stopped at the end."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15 is not installed ({PG_BIN}); run scripts/test to install it")
    server = PgServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PgServer) -> Iterator[str]:
    """The URL of a fresh, empty database, dropped after the test."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)
