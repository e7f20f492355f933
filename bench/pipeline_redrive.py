"""redrive's side of the failure-pipeline benchmark (bench/bench_pipeline.py).

Four systems, each timed from the first publish (or the first outbox insert) until every
event is settled and verified in redrive's own store:

- **bus**: ``publishers`` tasks publish the events on an EventBus; a failure is durable
  before its ``publish`` returns, and the bus's scheduler runs the retries.
- **outbox**: a producer thread adds every event to the outbox in its own business
  transaction (``events_per_txn`` events per COMMIT, default 1: each event durable on its
  own, as a peer's ``send`` is), while ``Outbox(store, bus=bus).run()`` dispatches them to
  the same bus.

Settings (redrive's defaults, except the workload's policy): ``RetryPolicy(max_attempts=3,
initial_delay=0.01, multiplier=2, max_delay=0.1, jitter="none", dead_on=(Poison,))``; the
outbox's ``poll_interval`` is 0.1 s (SQLite has no NOTIFY: a 100 ms poll, the same bound a
due retry gets in the peers' settings; PostgreSQL wakes on NOTIFY).
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from peers.plan import Calls, Poison, check_calls, expected, handle, settled, shares

from redrive import Event, EventBus, RetryPolicy
from redrive.models import Status
from redrive.outbox import Outbox
from redrive.stores.base import Filter, Store

POLICY = RetryPolicy(
    max_attempts=3,
    initial_delay=0.01,
    multiplier=2.0,
    max_delay=0.1,
    jitter="none",
    dead_on=(Poison,),
)
TOPIC = "orders.created"
POLL = 0.005  # how often the benchmark looks for "settled" (seconds)
DEADLINE = 300.0


@dataclasses.dataclass
class Result:
    """One timed run: seconds, and what verification found wrong (empty: verified)."""

    seconds: float
    problems: list[str]
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def verified(self) -> bool:
        return not self.problems


WRITES = ("add", "save", "save_many", "claim_due", "extend_leases", "next_due_at")


def count_store_calls(store: Store, names: tuple[str, ...] = WRITES) -> dict[str, Counter[str]]:
    """Count the engine's and scheduler's calls of ``store`` (each a transaction, or a
    read for ``next_due_at``) and the seconds spent in them; the benchmark's own polling is
    not counted. Instruments this one store object, in place."""
    lock = threading.Lock()
    calls: Counter[str] = Counter()
    records: Counter[str] = Counter()
    spent: Counter[str] = Counter()
    for name in names:
        method = getattr(store, name, None)
        if method is None:
            continue

        def timed(*args: Any, _method: Any = method, _name: str = name, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = None
            try:
                result = _method(*args, **kwargs)
                return result
            finally:
                if args and isinstance(args[0], list | tuple):
                    size = len(args[0])  # records written
                else:
                    size = len(result) if isinstance(result, list) else 1  # records claimed
                with lock:
                    calls[_name] += 1
                    records[_name] += size
                    spent[_name] += time.perf_counter() - start

        setattr(store, name, timed)
    return {"calls": calls, "records": records, "seconds": spent}


def _bus(store: Store, calls: Calls) -> EventBus:
    bus = EventBus(store, policy=POLICY)
    seen: set[int] = set()

    async def handler(event: Event) -> None:
        assert isinstance(event.payload, dict)
        i = event.payload["i"]
        assert isinstance(i, int)
        attempt = 2 if i in seen else 1
        seen.add(i)
        handle(calls, i, attempt)

    bus.subscribe(TOPIC, handler, name="pipeline.handler")
    return bus


def _store_settled(store: Store, n: int) -> bool:
    want = expected(n)
    return (
        store.count(Filter(statuses=(Status.DEAD,))) == want["dead"]
        and store.count(Filter(statuses=(Status.RESOLVED,))) == want["transient"]
        and store.count(Filter(statuses=(Status.SCHEDULED, Status.RETRYING))) == 0
    )


async def _until(check: Callable[[], bool], what: str) -> None:
    """Poll ``check`` (in a thread: it may query the store) until it holds."""
    deadline = time.monotonic() + DEADLINE
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not settled within {DEADLINE:.0f}s: {what}")
        await asyncio.sleep(POLL)


def verify(store: Store, calls: Calls, n: int) -> list[str]:
    """What is wrong with a settled run, checked in the store and the handler counts."""
    want = expected(n)
    problems = check_calls(calls.counts, n)
    dead = store.find(Filter(statuses=(Status.DEAD,)), limit=want["dead"] + 1).items
    if len(dead) != want["dead"]:
        problems.append(f"{len(dead)} dead letters, expected {want['dead']}")
    wrong = [r.id for r in dead if not r.error_type.endswith("Poison") or r.attempts != 1]
    if wrong:
        problems.append(f"{len(wrong)} dead letters are not poison after one attempt")
    resolved = store.find(Filter(statuses=(Status.RESOLVED,)), limit=want["transient"] + 1).items
    if len(resolved) != want["transient"] or any(r.attempts != 2 for r in resolved):
        problems.append(f"{len(resolved)} resolved records, expected {want['transient']} at 2")
    still = store.count(Filter(statuses=(Status.SCHEDULED, Status.RETRYING)))
    if still:
        problems.append(f"{still} records still scheduled or retrying")
    return problems


async def run_bus(store: Store, n: int, *, publishers: int = 100) -> Result:
    """The bus pipeline on ``store`` (closed at the end)."""
    calls = Calls()
    bus = _bus(store, calls)

    async def publisher(k: int) -> None:
        for i in range(k, n, publishers):
            await bus.publish(TOPIC, {"i": i})

    try:
        async with bus:
            start = time.perf_counter()
            await asyncio.gather(*(publisher(k) for k in range(publishers)))
            await _until(lambda: settled(calls.counts, n), "handler calls")
            await _until(lambda: _store_settled(store, n), "store")
            seconds = time.perf_counter() - start
        return Result(seconds, verify(store, calls, n))
    finally:
        store.close()


async def run_outbox(
    store: Store,
    n: int,
    *,
    connect: Callable[[], Any],
    rows: Callable[[], dict[str, int]],
    events_per_txn: int = 1,
    producers: int = 1,
) -> Result:
    """The outbox pipeline on ``store`` (closed at the end). ``connect`` opens the
    connection of a producer to the store's database (sqlite3 or psycopg), ``producers``
    of them add their share of the events at once; ``rows`` counts the outbox's rows by
    status."""
    calls = Calls()
    bus = _bus(store, calls)
    outbox = Outbox(store, bus=bus, poll_interval=0.1)
    conns = [connect() for _ in range(producers)]

    def produce_share(conn: Any, events: range) -> None:
        is_sqlite = isinstance(conn, sqlite3.Connection)
        for first in range(0, len(events), events_per_txn):
            if is_sqlite:
                conn.execute("BEGIN IMMEDIATE")
            for i in events[first : first + events_per_txn]:
                outbox.add(conn, TOPIC, {"i": i})
            conn.execute("COMMIT") if is_sqlite else conn.commit()

    def produce() -> None:
        with ThreadPoolExecutor(producers) as pool:
            list(pool.map(produce_share, conns, shares(n, producers)))

    def rows_done() -> bool:
        return rows().get("done", 0) == n

    try:
        async with bus:
            dispatcher = asyncio.create_task(outbox.run())
            start = time.perf_counter()
            await asyncio.to_thread(produce)
            await _until(lambda: settled(calls.counts, n), "handler calls")
            await _until(lambda: _store_settled(store, n) and rows_done(), "store and outbox")
            seconds = time.perf_counter() - start
            outbox.stop()
            await dispatcher
        problems = verify(store, calls, n)
        counts = rows()
        if counts != {"done": n}:
            problems.append(f"outbox rows {counts}, expected {n} done")
        return Result(seconds, problems)
    finally:
        for conn in conns:
            conn.close()
        outbox.close()
        store.close()


def _rows(connect: Callable[[], Any], table: str) -> Callable[[], dict[str, int]]:
    def count() -> dict[str, int]:
        conn = connect()
        try:
            return dict(conn.execute(f"SELECT status, count(*) FROM {table} GROUP BY 1").fetchall())
        finally:
            conn.close()

    return count


# -- the four systems ----------------------------------------------------------------------
def sqlite_bus(folder: Path, n: int, *, count: bool = False) -> Result:
    from redrive.stores.sqlite import SQLiteStore

    store = SQLiteStore(folder / "bus.db")
    counts = count_store_calls(store) if count else {}
    result = asyncio.run(run_bus(store, n))
    result.detail.update(counts)
    return result


def sqlite_outbox(folder: Path, n: int, events_per_txn: int = 1, producers: int = 1) -> Result:
    from redrive.stores.sqlite import SQLiteStore

    path = folder / "outbox.db"
    store = SQLiteStore(path)

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    rows = _rows(lambda: sqlite3.connect(path), "redrive_outbox")
    return asyncio.run(
        run_outbox(
            store,
            n,
            connect=connect,
            rows=rows,
            events_per_txn=events_per_txn,
            producers=producers,
        )
    )


def postgres_bus(url: str, n: int, *, count: bool = False) -> Result:
    from redrive.stores.postgres import PostgresStore

    store = PostgresStore(url)
    counts = count_store_calls(store) if count else {}
    result = asyncio.run(run_bus(store, n))
    result.detail.update(counts)
    return result


def postgres_outbox(url: str, n: int, events_per_txn: int = 1, producers: int = 1) -> Result:
    import psycopg

    from redrive.stores.postgres import PostgresStore

    store = PostgresStore(url)

    def connect() -> Any:
        return psycopg.connect(url)

    rows = _rows(lambda: psycopg.connect(url, autocommit=True), "redrive.redrive_outbox")
    return asyncio.run(
        run_outbox(
            store,
            n,
            connect=connect,
            rows=rows,
            events_per_txn=events_per_txn,
            producers=producers,
        )
    )


# -- the outbox's physical limit ---------------------------------------------------------
def _raw_inserts(
    connect: Callable[[], Any], begin: str | None, insert: str, n: int, per_txn: int, producers: int
) -> Result:
    """``n`` rows, ``per_txn`` per COMMIT, by ``producers`` concurrent connections, into a
    minimal table: what the outbox's producers must do at the least (their business
    transaction, each durable on its own), and nothing else."""
    conns = [connect() for _ in range(producers)]

    def produce(conn: Any, events: range) -> None:
        for first in range(0, len(events), per_txn):
            if begin:
                conn.execute(begin)
            for i in events[first : first + per_txn]:
                conn.execute(insert, (TOPIC, f'{{"i": {i}}}'))
            conn.execute("COMMIT") if begin else conn.commit()

    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(producers) as pool:
            list(pool.map(produce, conns, shares(n, producers)))
        seconds = time.perf_counter() - start
        (count,) = conns[0].execute("SELECT count(*) FROM raw_outbox").fetchone()
        problems = [] if count == n else [f"{count} rows, expected {n}"]
        return Result(seconds, problems)
    finally:
        for conn in conns:
            conn.close()


def sqlite_raw_inserts(folder: Path, n: int, per_txn: int = 1, producers: int = 1) -> Result:
    """The physical limit of the SQLite outbox's producer side, at its durability (WAL,
    ``synchronous=FULL``)."""
    path = folder / "raw.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE raw_outbox (id INTEGER PRIMARY KEY, topic TEXT NOT NULL, "
            "payload TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
    conn.close()

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    insert = "INSERT INTO raw_outbox (topic, payload) VALUES (?, ?)"
    return _raw_inserts(connect, "BEGIN IMMEDIATE", insert, n, per_txn, producers)


def postgres_raw_inserts(url: str, n: int, per_txn: int = 1, producers: int = 1) -> Result:
    """The same on PostgreSQL (fsync on, ``synchronous_commit`` on)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE raw_outbox (id bigserial PRIMARY KEY, topic text NOT NULL, "
            "payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        )
    insert = "INSERT INTO raw_outbox (topic, payload) VALUES (%s, %s)"
    return _raw_inserts(lambda: psycopg.connect(url), None, insert, n, per_txn, producers)
