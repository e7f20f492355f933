"""Connections for the PostgreSQL store: a pool, retries with backoff, error mapping, LISTEN.

A lost connection (server restarted, network blip) is retried with exponential backoff
(capped at ``MAX_BACKOFF``) until ``retry_timeout`` has passed, then ``StoreUnavailable``
is raised: the caller keeps the event (its own transaction rolls back, or the broker
redelivers). Errors that no retry can fix (bad SQL, bad data, wrong password) are raised at
once as ``StoreError``.

While the pool reconnects after an outage, a call does not wait for it: the pool retries
on its own schedule (1 s, 2 s, 4 s ... between attempts), so a heartbeat queued behind it
would renew its leases seconds after the server is back, past a short lease. Each call
then connects on its own, until the pool hands out connections again.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from redrive.exceptions import StoreError, StoreUnavailable

logger = logging.getLogger("redrive.stores.postgres")

T = TypeVar("T")
Work = Callable[[psycopg.Connection[tuple[Any, ...]], int], T]

# SQLSTATE classes and codes a retry can fix: connection exceptions, the server shutting
# down or starting up, deadlocks and serialization failures (the transaction is redone).
_TRANSIENT_CLASSES = ("08", "57P", "40", "53")
_CONNECTION_LOST = ("08", "57P")  # the server went away: the pool's connections are gone

MAX_BACKOFF = 0.25
"""The longest wait between two retries of a call: a call gets through at most this long
after the server is back, well inside a short lease (2 s leases, renewed every 0.67 s)."""
POOL_SLICE = 0.25
"""How long a call waits on the pool before it looks again whether an outage began."""


_REFUSED_FOR_GOOD = re.compile(
    r"FATAL:\s+(database \S+ does not exist|role \S+ does not exist"
    r"|password authentication failed|no pg_hba\.conf entry)"
)
"""A server's refusal of a connection that no wait will change. libpq reports it with no
SQLSTATE, so only its (English, the server's default) message tells it from a restart."""


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the transaction may succeed."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state is None:  # raised by the client: the connection broke or could not be made
        if _REFUSED_FOR_GOOD.search(str(exc)):
            return False
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return state.startswith(_TRANSIENT_CLASSES)


def _lost_connection(exc: BaseException) -> bool:
    """Whether ``exc`` says the server went away (not a deadlock or a full pool)."""
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state is None:
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return state.startswith(_CONNECTION_LOST)


def describe(exc: BaseException) -> str:
    """The driver's message on one line (psycopg messages may span several)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


class Connector:
    """A pool of connections with the schema on their search_path.

    :param conninfo: the libpq URL (password included; never logged).
    :param url: the same URL with the password masked, for messages.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        url: str,
        schema: str,
        min_size: int = 1,
        max_size: int = 10,
        retry_timeout: float = 30.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self.conninfo = conninfo
        self.url = url
        self.schema = schema
        self.retry_timeout = retry_timeout
        self._connect_kwargs: dict[str, Any] = {
            "connect_timeout": max(1, int(connect_timeout)),
            "application_name": "redrive",
        }
        self.pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            kwargs=self._connect_kwargs,
            configure=self._configure,
            open=False,
            timeout=retry_timeout,
            reconnect_timeout=max(retry_timeout, 60.0),
            name="redrive",
        )
        self._opened = False
        self._closed = False
        self._outage = False  # an outage is being waited out (warned about once)
        self._recovering = False  # the server went away: calls connect on their own
        self._lock = threading.Lock()

    def _configure(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        conn.execute(self.search_path_sql())
        conn.execute("SET TIME ZONE 'UTC'")
        conn.commit()

    def search_path_sql(self) -> sql.Composed:
        """``SET search_path`` to the store's schema (then public, for pg_trgm)."""
        return sql.SQL("SET search_path TO {}, public").format(sql.Identifier(self.schema))

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection[tuple[Any, ...]]:
        """A connection of its own (outside the pool), for migrations and LISTEN."""
        try:
            return self.connect_raw(autocommit=autocommit)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot connect to {self.url}: {describe(exc)}") from exc

    def connect_raw(self, *, autocommit: bool = False) -> psycopg.Connection[tuple[Any, ...]]:
        """Like :meth:`connect`, raising the driver's error (for :meth:`retrying`)."""
        return psycopg.connect(self.conninfo, autocommit=autocommit, **self._connect_kwargs)

    def _ensure_open(self) -> None:
        if self._closed:  # a closed pool cannot reopen: say so, as the SQLite store does
            raise StoreError(f"{self.url} is closed")
        if not self._opened:
            with self._lock:
                if not self._opened:
                    self.pool.open(wait=False)
                    self._opened = True

    def run(self, work: Work[T]) -> T:
        """Run ``work(conn, attempt)`` in one transaction, retrying transient failures.

        ``attempt`` is 0 the first time; a retried write may find its own earlier commit
        (the connection broke after COMMIT was sent), so writes use it to stay idempotent.
        """
        self._ensure_open()

        def pooled(attempt: int, remaining: float) -> T:
            with self._connection(remaining) as conn, conn.transaction():
                return work(conn, attempt)

        return self.retrying(pooled)

    def run_statement(self, work: Work[T]) -> T:
        """Like :meth:`run` for work that is one statement: run it in autocommit mode.

        One statement is atomic on its own, so the server commits it with no BEGIN and
        no COMMIT: one round trip instead of three.
        """
        self._ensure_open()

        def pooled(attempt: int, remaining: float) -> T:
            with self._connection(remaining) as conn:
                conn.autocommit = True
                try:
                    return work(conn, attempt)
                finally:
                    if not conn.closed:
                        conn.autocommit = False

        return self.retrying(pooled)

    @contextlib.contextmanager
    def _connection(self, timeout: float) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """A connection for one call: the pool's, or while the pool reconnects after an
        outage, one of the call's own (closed after it). Committed on a clean exit, rolled
        back on an error, as ``pool.connection()`` does."""
        conn, pooled = self._checkout(timeout)
        try:
            with conn:
                yield conn
        finally:
            if pooled:
                self.pool.putconn(conn)

    def _checkout(self, timeout: float) -> tuple[psycopg.Connection[tuple[Any, ...]], bool]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            wait = 0.01 if self._recovering else min(POOL_SLICE, left)
            try:
                conn = self.pool.getconn(timeout=max(0.01, wait))
            except PoolTimeout:
                if self._recovering:  # the pool is still reconnecting: do not queue behind it
                    return self._own_connection(), False
                if left <= POOL_SLICE:
                    raise
                continue
            self._recovering = False
            return conn, True

    def _own_connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        conn = self.connect_raw()
        try:
            self._configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def retrying(self, call: Callable[[int, float], T]) -> T:
        """``call(attempt, seconds_left)``, retried with backoff while its failures are
        transient, until ``retry_timeout``; driver errors are raised as store errors."""
        deadline = time.monotonic() + self.retry_timeout
        delay, attempt = 0.05, 0
        while True:
            try:
                result = call(attempt, max(0.1, deadline - time.monotonic()))
            except UnicodeEncodeError as exc:  # a lone surrogate in a text column
                raise StoreError(
                    f"{self.url}: text that is not valid Unicode cannot be stored ({exc.reason})"
                ) from exc
            except (psycopg.Error, PoolTimeout) as exc:
                if not is_transient(exc):
                    raise StoreError(f"{self.url}: {describe(exc)}") from exc
                if time.monotonic() + delay > deadline:
                    raise StoreUnavailable(
                        f"{self.url} unavailable for {self.retry_timeout:g}s: {describe(exc)}"
                    ) from exc
                self._note_outage(exc, delay)
                if _lost_connection(exc):
                    self._recovering = True
                self._drop_stale()
                time.sleep(delay)  # backoff between reconnection attempts
                delay, attempt = min(delay * 2, MAX_BACKOFF), attempt + 1
            else:
                if self._outage:
                    self._outage = False
                    logger.warning("store %s answers again", self.url)
                return result

    def _note_outage(self, exc: BaseException, delay: float) -> None:
        """One warning when an outage begins (what a CLI prints on stderr), the retries at
        debug level: a process waiting out a restart says so once, not every 2 s."""
        if self._outage:
            logger.debug("store %s: %s; retrying in %.2fs", self.url, describe(exc), delay)
            return
        self._outage = True
        logger.warning(
            "store %s is unreachable (%s); retrying for up to %gs",
            self.url,
            describe(exc),
            self.retry_timeout,
        )

    def borrow(self, timeout: float) -> psycopg.Connection[tuple[Any, ...]]:
        """A pooled connection kept across calls (the outbox's locked batches keep one
        transaction open while they deliver); hand it back with :meth:`give_back`."""
        self._ensure_open()
        return self.pool.getconn(timeout=timeout)

    def give_back(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        """Return a borrowed connection (the pool rolls back or replaces a broken one)."""
        self.pool.putconn(conn)

    def _drop_stale(self) -> None:
        """After a connection broke, test the idle ones so the retry gets a live one."""
        try:
            self.pool.check()
        except Exception:  # the pool replaces what it can; the retry reports the rest
            logger.debug("pool check failed", exc_info=True)

    def close(self) -> None:
        """Close every pooled connection."""
        if self._opened:
            self.pool.close()
        self._opened = False
        self._closed = True


class NotifyThread:
    """LISTEN on one channel in a thread; call every callback on each notification.

    The thread reconnects (with backoff) if its connection breaks, and then calls the
    callbacks once, since a notification may have been missed meanwhile.
    """

    def __init__(self, connector: Connector, channel: str, *, tick: float = 0.25) -> None:
        self._connector = connector
        self.channel = channel
        self._tick = tick
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Start calling ``callback``; return the function that stops it."""
        with self._lock:
            self._callbacks.append(callback)
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._loop, name="redrive-listen", daemon=True
                )
                self._thread.start()
        # Wait (bounded) until LISTEN is in place, so nothing scheduled after this returns
        # is missed; if the server is down, the loop keeps trying in the background.
        self._ready.wait(timeout=5)

        def remove() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)
                idle = not self._callbacks
            if idle:
                self.stop()

        return remove

    def stop(self) -> None:
        """Stop the thread and wait for it to end."""
        with self._lock:
            thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._tick * 8)
        self._ready.clear()

    def _fire(self) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback()
            except Exception:  # one broken callback must not silence the others
                logger.exception("listener callback failed")

    def _loop(self) -> None:
        delay = 0.1
        first = True
        while not self._stop.is_set():
            try:
                with self._connector.connect(autocommit=True) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self._ready.set()
                    if not first:
                        self._fire()  # something may have been scheduled while we were away
                    first, delay = False, 0.1
                    while not self._stop.is_set():
                        # stop_after=1: wake the schedulers at the first notification.
                        if list(conn.notifies(timeout=self._tick, stop_after=1)):
                            self._fire()
            except (psycopg.Error, StoreError) as exc:
                logger.warning("LISTEN on %s lost: %s", self._connector.url, describe(exc))
                self._stop.wait(delay)  # backoff, interrupted by stop()
                delay = min(delay * 2, 5.0)
