"""Connections, transactions and schema migrations of the SQLite store.

Each thread gets its own connection (WAL lets readers run beside the one writer); writes
take the write lock up front (``BEGIN IMMEDIATE``) so two processes never deadlock on a
lock upgrade, and wait up to ``busy_timeout`` for each other. ``synchronous=FULL`` makes
every commit durable before it returns. An in-memory database uses one connection under a
lock.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from redrive.exceptions import ConfigError, StoreError, StoreUnavailable

_NOT_A_DATABASE = {26, 11}
"""SQLITE_NOTADB and SQLITE_CORRUPT: the file will not get better by waiting."""


def migrations() -> list[tuple[int, str]]:
    """(version, SQL) of each schema migration, in order."""
    folder = resources.files("redrive.stores") / "migrations" / "sqlite"
    found = []
    for item in folder.iterdir():
        if item.name.endswith(".sql"):
            found.append((int(item.name.split("_", 1)[0]), item.read_text("utf-8")))
    return sorted(found)


class SQLiteConnections:
    """Per-thread connections to one SQLite database, with read and write transactions."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        self.path = str(path)
        self.url = f"sqlite:///{self.path}"
        self._busy_ms = int(busy_timeout * 1000)
        self._memory = self.path == ":memory:"
        self._local = threading.local()
        self._lock = threading.RLock()
        self._all: list[sqlite3.Connection] = []
        self._closed = False
        if not self._memory:
            parent = Path(self.path).expanduser().parent
            if not parent.is_dir():
                raise StoreUnavailable(f"cannot open {self.url}: no directory {parent}")

    # -- connections -------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=self._busy_ms / 1000,
            )
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            if not self._memory:
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", None) in _NOT_A_DATABASE:
                # Not an outage to wait out: the file is something else, or corrupt.
                raise ConfigError(
                    f"{self.url}: the file is not a SQLite database (corrupt, or another "
                    "kind of file); point the store URL at a redrive database",
                    key="store_url",
                ) from exc
            raise StoreUnavailable(f"cannot open {self.url}: {exc}") from exc
        with self._lock:
            self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise StoreError(f"{self.url} is closed")
        if self._memory:
            with self._lock:
                if not self._all:
                    self._open()
                yield self._all[0]
            return
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._open()
        yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, for reads (WAL: they never wait for the writer)."""
        with self._conn() as conn, _wrapped(self.url):
            yield conn

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """One write transaction for every ``write()`` this thread makes inside: they join
        it, and it commits at the end (or rolls all of them back on an error)."""
        if getattr(self._local, "joined", False):
            yield
            return
        with self.write():
            self._local.joined = True
            try:
                yield
            finally:
                self._local.joined = False

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds the write lock from its first statement; inside
        ``together()``, the open transaction of this thread."""
        with self._conn() as conn, _wrapped(self.url):
            if getattr(self._local, "joined", False):
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # Also after a failed COMMIT: a connection left inside a transaction would
                # fail every later BEGIN on this thread.
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    # -- lifecycle ---------------------------------------------------------------------
    def migrate(self) -> int:
        """Apply the migrations newer than the file's ``user_version``, in one transaction."""
        with self.write() as conn:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            for version, sql in migrations():
                if version > current:
                    for statement in _statements(sql):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {version}")
                    current = version
            return int(current)

    def close(self) -> None:
        """Close every connection; the store is unusable afterwards."""
        with self._lock:
            self._closed = True
            for conn in self._all:
                conn.close()
            self._all.clear()


def _statements(sql: str) -> Iterator[str]:
    """Split a migration into statements; trigger bodies keep their inner semicolons."""
    buffer = ""
    for line in sql.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer.strip()
            buffer = ""
    if buffer.strip():
        yield buffer.strip()


@contextlib.contextmanager
def _wrapped(url: str) -> Iterator[None]:
    """Map sqlite3 errors to the store's errors, naming the store but nothing secret."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "unable to open" in text or "locked" in text or "disk I/O" in text:
            raise StoreUnavailable(f"{url}: {text}") from exc
        raise StoreError(f"{url}: {text}") from exc
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{url}: {exc}") from exc
    except UnicodeEncodeError as exc:  # a lone surrogate in a text column
        raise StoreError(
            f"{url}: text that is not valid Unicode cannot be stored ({exc.reason})"
        ) from exc
