"""Failure-path benchmarks (issue 14, items 2, 3 and 6), each against a baseline measured in
the same run, in interleaved rounds (medians).

1. Dead-letter writes: ``--publishers`` concurrent publishers on an EventBus whose handler
   always fails non-retriably, with a 20-item JSON payload, on SQLite (file, WAL,
   synchronous=FULL) and on PostgreSQL (fsync on). Baseline: the physical limit of the same
   work at the same durability: a raw ``executemany`` of the very rows redrive wrote (read
   back from its table, so the row contents are the same), in 100-row transactions, into a
   MINIMAL table (redrive's columns, its primary key and the three indexes a list page
   needs: status, topic and fingerprint, each with id; no triggers), same fsync setting,
   same server. For scale it also prints the same raw insert into redrive's own schema
   (all its indexes; on PostgreSQL also without its trigram indexes, and by COPY, which
   fires the statement triggers once per transaction as the store's batch INSERT does,
   where an executemany fires them once per row; a COPY into the minimal table too), and
   the ceiling of any in-process bus: one failing publish's own Python (measured alone,
   its write already durable) plus the raw insert of its row, into each table.
2. Where one failure's time goes (SQLite): the same run with a store that writes nothing,
   one that only encodes the rows, and the real one; the difference is each stage's cost.
   Then a cProfile of the event loop (record build) and of the store's ``add`` (encoding,
   statements, commit).
3. The Python cost of one failure (``--parts cpu``): CPU time, which load disturbs far less
   than wall time, of the event loop's thread (publish, the handler, the record, the group
   commit's futures) and of the writer's ``add`` calls (encoding, SQLite's own work, the
   COMMIT's syscalls) per failure, in a real bus run on SQLite; and ``record_to_row`` alone.
   Each is the median of ``--rounds`` runs (min in brackets).
4. Item 6: the success path against a bare loop, and the list page, the deepest keyset page
   and ``stats()`` at a store of ``--rows`` records.

Usage: .venv/bin/python bench/bench_failures.py [--failures 10000] [--rounds 3]
       [--rows 100000] [--events 50000] [--no-postgres] [--no-sqlite] [--no-profile]
       [--parts writes,cpu,breakdown,success,queries]
Starts its own PostgreSQL (fsync on) in a temp dir and stops it by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.pg_server

from _common import build_sqlite, latencies, report, timed

from redrive import Event, EventBus, NonRetriableError
from redrive.models import DeadLetter, Status, utcnow
from redrive.stores.base import Filter
from redrive.stores.sqlite import SQLiteStore

PARTS = ("writes", "cpu", "breakdown", "success", "queries")
TABLE = "redrive_dead_letters"
TXN = 100  # rows per transaction of the raw baselines
# The three indexes a list page needs: newest first by status, by topic, by error group.
LIST_INDEXES = (("status", "id"), ("topic", "status", "id"), ("fingerprint", "status", "id"))


def payload(i: int) -> dict[str, Any]:
    """A 20-item JSON object, as an order event might carry."""
    return {
        "order_id": i,
        "customer_id": f"c-{i % 5000}",
        "sku": f"SKU-{i % 977}",
        "quantity": 1 + i % 5,
        "price_cents": 1999 + i % 300,
        "currency": "EUR",
        "country": "DE",
        "city": "Berlin",
        "postcode": f"{10000 + i % 900}",
        "street": "Hauptstrasse 1",
        "email": f"user{i % 5000}@example.com",
        "channel": "web",
        "coupon": None,
        "gift": False,
        "priority": i % 3,
        "warehouse": f"wh-{i % 7}",
        "carrier": "dhl",
        "weight_g": 250 + i % 1000,
        "note": "leave at the door",
        "created": "2026-12-01T10:00:00Z",
    }


# -- dead-letter writes through the bus ------------------------------------------------------
async def bus_failures(store: Any, n: int, publishers: int) -> float:
    """Seconds for ``publishers`` tasks to publish ``n`` events whose handler fails
    non-retriably; each publish returns once its dead letter is durable."""
    bus = EventBus(store)

    async def reject(event: Event) -> None:
        assert isinstance(event.payload, dict)
        raise NonRetriableError(f"order {event.payload['order_id']} is invalid")

    bus.subscribe("orders.created", reject, name="shop.reject")
    per = n // publishers

    async def publisher(k: int) -> None:
        for i in range(per):
            await bus.publish("orders.created", payload(k * per + i))

    start = time.perf_counter()
    await asyncio.gather(*(publisher(k) for k in range(publishers)))
    elapsed = time.perf_counter() - start
    await bus.stop()
    return elapsed


def sqlite_bus(path: Path, n: int, publishers: int) -> float:
    """Dead letters/s on a SQLite file; checks that every one was written, dead."""
    store = SQLiteStore(path)
    elapsed = asyncio.run(bus_failures(store, n, publishers))
    written = store.count(Filter(statuses=(Status.DEAD,)))
    store.close()
    expected = n // publishers * publishers
    assert written == expected, f"{written} dead letters written, {expected} expected"
    return written / elapsed


def sqlite_raw(source: Path, target: Path, *, variant: str = "minimal") -> float:
    """Rows/s of a raw executemany of ``source``'s rows into ``target``, 100 per
    transaction, WAL + synchronous=FULL.

    ``minimal``: redrive's columns and primary key, the three list indexes, no triggers.
    ``schema``: redrive's own schema (all its indexes; since schema 6 it has no triggers, so
    this insert skips the counts, groups and timeline that ``store.add`` keeps).
    """
    src = sqlite3.connect(source)
    ddl = src.execute("SELECT sql FROM sqlite_master WHERE name = ?", (TABLE,)).fetchone()[0]
    columns = [row[1] for row in src.execute(f"PRAGMA table_info({TABLE})")]
    rows = src.execute(f"SELECT {', '.join(columns)} FROM {TABLE}").fetchall()
    src.close()
    if variant == "minimal":
        conn = sqlite3.connect(target, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(ddl)
        for i, cols in enumerate(LIST_INDEXES):
            conn.execute(f"CREATE INDEX list_{i} ON {TABLE} ({', '.join(cols)})")
    else:
        SQLiteStore(target).close()  # redrive's schema, migrated
        conn = sqlite3.connect(target, isolation_level=None)
    conn.execute("PRAGMA synchronous = FULL")
    insert = f"INSERT INTO {TABLE} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    start = time.perf_counter()
    for i in range(0, len(rows), TXN):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert, rows[i : i + TXN])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return len(rows) / elapsed


def sqlite_store_add(source: Path, target: Path) -> float:
    """Records/s of ``SQLiteStore.add`` of ``source``'s records, 100 per call (one
    transaction each): encoding, statements, indexes, the kept counts/groups/timeline and
    COMMIT, without the bus."""
    src = SQLiteStore(source)
    records: list[DeadLetter] = []
    cursor = None
    while True:
        page = src.find(Filter(), limit=1000, cursor=cursor)
        records.extend(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    src.close()
    records.reverse()  # oldest first, as they were written
    store = SQLiteStore(target)
    start = time.perf_counter()
    for i in range(0, len(records), TXN):
        store.add(records[i : i + TXN])
    elapsed = time.perf_counter() - start
    store.close()
    return len(records) / elapsed


def postgres_bus(url: str, n: int, publishers: int) -> float:
    """Dead letters/s on PostgreSQL; checks that every one was written, dead."""
    from redrive.stores.postgres import PostgresStore

    store = PostgresStore(url)
    elapsed = asyncio.run(bus_failures(store, n, publishers))
    written = store.count(Filter(statuses=(Status.DEAD,)))
    store.close()
    expected = n // publishers * publishers
    assert written == expected, f"{written} dead letters written, {expected} expected"
    return written / elapsed


def postgres_raw(
    url: str, *, schema: str = "redrive", variant: str = "minimal", copy: bool = False
) -> float:
    """Rows/s of a raw executemany (or, with ``copy``, a COPY) of redrive's rows (read back
    as text: the same contents) in 100-row transactions, in the same database.

    ``minimal``: into a table of redrive's columns, its primary key and the three list
    indexes. ``schema``: into redrive's own table in another schema of the database (all
    its indexes and statement triggers). ``no-trgm``: the same without the two trigram
    (GIN) indexes of the search. Measure the schema with COPY: it fires the statement
    triggers once per 100 rows, as the store's one INSERT per batch does, where an
    executemany fires them once per row.
    """
    import psycopg

    from redrive.stores.postgres import PostgresStore

    with psycopg.connect(url) as conn:
        columns = [
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = %s ORDER BY ordinal_position",
                (schema, TABLE),
            )
        ]
        as_text = ", ".join(f"{c}::text" for c in columns)
        rows = conn.execute(f"SELECT {as_text} FROM {schema}.{TABLE}").fetchall()
        if variant == "minimal":
            target = "public.minimal"
            conn.execute("DROP TABLE IF EXISTS public.minimal")
            conn.execute(f"CREATE TABLE public.minimal (LIKE {schema}.{TABLE} INCLUDING DEFAULTS)")
            conn.execute("ALTER TABLE public.minimal ADD PRIMARY KEY (id)")
            for i, cols in enumerate(LIST_INDEXES):
                conn.execute(f"CREATE INDEX minimal_list_{i} ON public.minimal ({', '.join(cols)})")
        else:
            conn.execute("DROP SCHEMA IF EXISTS raw CASCADE")
            conn.commit()
            PostgresStore(url, schema="raw").close()
            target = f"raw.{TABLE}"
            if variant == "no-trgm":
                conn.execute("DROP INDEX raw.redrive_dl_message_trgm")
            if variant in ("no-trgm", "no-payload-trgm"):
                conn.execute("DROP INDEX raw.redrive_dl_payload_trgm")
        conn.commit()
        names = ", ".join(columns)
        insert = f"INSERT INTO {target} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"
        start = time.perf_counter()
        for i in range(0, len(rows), TXN):
            with conn.cursor() as cur:
                if copy:
                    with cur.copy(f"COPY {target} ({names}) FROM STDIN") as stream:
                        for row in rows[i : i + TXN]:
                            stream.write_row(row)
                else:
                    cur.executemany(insert, rows[i : i + TXN])
            conn.commit()
        elapsed = time.perf_counter() - start
        conn.execute("DROP TABLE IF EXISTS public.minimal")
        conn.execute("DROP SCHEMA IF EXISTS raw CASCADE")
        conn.commit()
    return len(rows) / elapsed


def interleaved(rounds: int, runs: dict[str, Callable[[int], float]]) -> dict[str, float]:
    """Run each of ``runs`` once per round, in turn; the median of each."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for k in range(rounds):
        for name, run in runs.items():
            samples[name].append(run(k))
    return {name: statistics.median(values) for name, values in samples.items()}


def sqlite_writes(folder: Path, n: int, publishers: int, rounds: int) -> None:
    def ours(k: int) -> float:
        return sqlite_bus(folder / f"bus-{k}.db", n, publishers)

    def raw(variant: str) -> Callable[[int], float]:
        return lambda k: sqlite_raw(
            folder / f"bus-{k}.db", folder / f"{variant}-{k}.db", variant=variant
        )

    medians = interleaved(
        rounds,
        {
            "bus": ours,
            "minimal": raw("minimal"),
            "schema": raw("schema"),
            "store-add": lambda k: sqlite_store_add(
                folder / f"bus-{k}.db", folder / f"store-add-{k}.db"
            ),
            "alone": lambda k: asyncio.run(_one_by_one(n)),
        },
    )
    print(f"SQLite dead-letter writes ({n:,} per round, {rounds} rounds, medians):")
    base = medians["minimal"]
    report(f"  raw executemany, {TXN}/txn, minimal table (baseline)", base, "rows/s")
    report(
        f"  raw executemany, {TXN}/txn, redrive's schema (its indexes)",
        medians["schema"],
        "rows/s",
        base,
    )
    report(
        f"  SQLiteStore.add, {TXN}/txn (encoding + kept counts/groups/timeline)",
        medians["store-add"],
        "rows/s",
        base,
    )
    report(
        f"  EventBus, {publishers} publishers, all fail non-retriably",
        medians["bus"],
        "dl/s",
        base,
        "target >= 0.50",
    )
    ceilings(
        medians["alone"], base, {"the minimal table": base, "redrive's schema": medians["schema"]}
    )


def ceilings(alone_us: float, base: float, tables: dict[str, float]) -> None:
    """The fastest any in-process bus could write dead letters into each table: a
    failure's own Python (one failing publish alone, its write already durable) plus the
    raw insert of its row, one after the other. They add up rather than overlap: each
    publisher waits for its own record, so a commit releases the whole batch, and the loop
    and the writer thread share one GIL."""
    print(f"  ceiling of a bus: one failing publish alone ({alone_us:.1f} us) + a raw row")
    for name, rate in tables.items():
        ceiling = 1 / (alone_us / 1e6 + 1 / rate)
        report(f"    into {name} ({1e6 / rate:.1f} us a row)", ceiling, "dl/s", base)


def postgres_writes(n: int, publishers: int, rounds: int) -> None:
    from tests.pg_server import PgServer

    server = PgServer(durable=True).start()
    try:
        urls: list[str] = []

        def ours(k: int) -> float:
            urls.append(server.create_database(f"bus_{k}"))
            return postgres_bus(urls[-1], n, publishers)

        medians = interleaved(
            rounds,
            {
                "bus": ours,
                "minimal": lambda k: postgres_raw(urls[k]),
                "minimal-copy": lambda k: postgres_raw(urls[k], copy=True),
                "schema": lambda k: postgres_raw(urls[k], variant="schema", copy=True),
                "no-payload-trgm": lambda k: postgres_raw(
                    urls[k], variant="no-payload-trgm", copy=True
                ),
                "no-trgm": lambda k: postgres_raw(urls[k], variant="no-trgm", copy=True),
                "alone": lambda k: asyncio.run(_one_by_one(n)),
            },
        )
    finally:
        server.stop()
    print(f"PostgreSQL dead-letter writes ({n:,} per round, {rounds} rounds, medians, fsync on):")
    base = medians["minimal"]
    report(f"  raw executemany, {TXN}/txn, minimal table (baseline)", base, "rows/s")
    report(f"  raw COPY, {TXN}/txn, minimal table", medians["minimal-copy"], "rows/s", base)
    report(
        f"  raw COPY, {TXN}/txn, redrive's schema (indexes, statement triggers)",
        medians["schema"],
        "rows/s",
        base,
    )
    report(
        "  the same without the payload's trigram (GIN) index",
        medians["no-payload-trgm"],
        "rows/s",
        base,
    )
    report(
        "  the same without both trigram (GIN) search indexes",
        medians["no-trgm"],
        "rows/s",
        base,
    )
    report(
        f"  EventBus, {publishers} publishers, all fail non-retriably",
        medians["bus"],
        "dl/s",
        base,
        "target >= 0.50",
    )
    ceilings(
        medians["alone"],
        base,
        {
            "the minimal table": base,
            "redrive's schema": medians["schema"],
            "the schema without trigram": medians["no-trgm"],
        },
    )


# -- the Python cost of one failure -------------------------------------------------------
class _Timed(SQLiteStore):
    """The real store; the CPU time of its ``add`` calls (in the writer's thread) summed."""

    cpu = 0.0

    def add(self, records: Sequence[DeadLetter]) -> list[str]:
        start = time.thread_time()
        try:
            return super().add(records)
        finally:
            type(self).cpu += time.thread_time() - start


async def _loop_cpu(store: Any, n: int, publishers: int) -> float:
    """CPU seconds of the event loop's thread over ``bus_failures``."""
    start = time.thread_time()
    await bus_failures(store, n, publishers)
    return time.thread_time() - start


class _Durable:
    """A writer whose every write is durable at once (an already-set future): what is left
    of a failure is the event loop's own Python work, with no thread hop or wait."""

    def write(self, record: DeadLetter) -> asyncio.Future[str]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        future.set_result(record.id)
        return future

    async def close(self) -> None:
        return None


async def _one_by_one(n: int) -> float:
    """Best microseconds of one failing publish (publish, check, event, handler, record
    build, write), one publish at a time, in runs of 1,000."""
    bus = EventBus(SQLiteStore(":memory:"))
    bus.engine.writer = _Durable()  # type: ignore[assignment]

    async def reject(event: Event) -> None:
        assert isinstance(event.payload, dict)
        raise NonRetriableError(f"order {event.payload['order_id']} is invalid")

    bus.subscribe("orders.created", reject, name="shop.reject")
    payloads = [payload(i) for i in range(1000)]
    best = float("inf")
    for _ in range(max(1, n // 1000)):
        start = time.perf_counter()
        for item in payloads:
            await bus.publish("orders.created", item)
        best = min(best, (time.perf_counter() - start) / len(payloads))
    await bus.stop()
    return best * 1e6


def cpu_costs(folder: Path, n: int, publishers: int, rounds: int) -> None:
    from redrive.stores.sql import record_to_row

    loop, writer, encode, alone = [], [], [], []
    for k in range(rounds):
        alone.append(asyncio.run(_one_by_one(n)))
        _Timed.cpu = 0.0
        store = _Timed(folder / f"cpu-{k}.db")
        loop.append(asyncio.run(_loop_cpu(store, n, publishers)) / n * 1e6)
        writer.append(_Timed.cpu / n * 1e6)
        record, dialect = store.find(Filter(), limit=1).items[0], store.dialect
        store.close()

        def encode_many(record: DeadLetter = record, dialect: Any = dialect) -> None:
            for _ in range(1000):
                record_to_row(record, dialect)

        encode.append(timed(encode_many, 5))
    print(f"Python cost of one failure (SQLite, {n:,} failures, {publishers} publishers, CPU):")
    for name, values in (
        ("  event loop thread (publish, handler, record, futures)", loop),
        ("  writer thread, store.add (encoding, SQLite, COMMIT syscalls)", writer),
    ):
        print(f"{name:<62} {statistics.median(values):8.2f} us  (min {min(values):.2f})")
    per = [value / 1000 * 1e6 for value in encode]
    for name, values in (
        ("  one failing publish alone, write already durable (best of runs)", alone),
        ("  record_to_row, one record (part of the writer thread's)", per),
    ):
        print(f"{name:<62} {statistics.median(values):8.2f} us  (min {min(values):.2f})")


# -- where one failure's time goes --------------------------------------------------------
class _NoWrite(SQLiteStore):
    """Takes records and writes nothing: the cost of everything before the store."""

    def add(self, records: Sequence[DeadLetter]) -> list[str]:
        return [record.id for record in records]


class _EncodeOnly(SQLiteStore):
    """Encodes each record into its row and writes nothing."""

    def add(self, records: Sequence[DeadLetter]) -> list[str]:
        from redrive.stores.sql import record_to_row

        for record in records:
            record_to_row(record, self.dialect)
        return [record.id for record in records]


class _Profiled(SQLiteStore):
    """The real store, its ``add`` calls (in the writer's threads) under one profiler."""

    profiler = cProfile.Profile()
    batches: list[int] = []

    def add(self, records: Sequence[DeadLetter]) -> list[str]:
        self.batches.append(len(records))
        return self.profiler.runcall(super().add, records)


def breakdown(folder: Path, n: int, publishers: int, profile: bool) -> None:
    """Microseconds per failure by stage (by subtraction), then the profiles."""
    stages = []
    for k, cls in enumerate((_NoWrite, _EncodeOnly, SQLiteStore)):
        store = cls(folder / f"stage-{k}.db")
        elapsed = asyncio.run(bus_failures(store, n, publishers))
        store.close()
        stages.append(elapsed / n * 1e6)
    print(f"Where one failure's time goes (SQLite, {n:,} failures, {publishers} publishers):")
    report("  bus + handler + record build + group commit, no store", stages[0], "us")
    report("  + row encoding (record_to_row)", stages[1] - stages[0], "us")
    report("  + SQL: statements, indexes, triggers, COMMIT + fsync", stages[2] - stages[1], "us")
    report("  total per failure", stages[2], "us")
    if not profile:
        return
    loop_profile = cProfile.Profile()
    store = _NoWrite(folder / "profile-loop.db")
    loop_profile.runcall(asyncio.run, bus_failures(store, n, publishers))
    store.close()
    _print_profile("event loop (record build), store writes nothing", loop_profile, n)
    profiled = _Profiled(folder / "profile-add.db")
    asyncio.run(bus_failures(profiled, n, publishers))
    profiled.close()
    sizes = _Profiled.batches
    print(f"  group commit: {len(sizes)} transactions, {statistics.mean(sizes):.1f} records each")
    _print_profile("store.add in the writer thread (encoding, SQL, commit)", profiled.profiler, n)


# Functions whose cumulative time tells a stage's cost, wherever they move in src/.
WATCHED = (
    "failure_record",
    "_new_record",
    "new_id",
    "fingerprint",
    "format_traceback",
    "record_to_row",
    "_open_records",
    "_merge",
    "executemany",
)


def _print_profile(title: str, profiler: cProfile.Profile, n: int, top: int = 14) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    entries: dict[Any, Any] = stats.stats
    rows = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)
    print(f"  cProfile, {title}: top {top} by own time (us per failure)")
    for (file, line, name), (_cc, calls, own, cumulative, _callers) in rows[:top]:
        print(_profile_line(file, line, name, calls, own, cumulative, n))
    watched = [row for row in rows if any(w in row[0][2] for w in WATCHED)]
    if watched:
        print("   watched functions, by cumulative time:")
        for (file, line, name), (_cc, calls, own, cumulative, _callers) in sorted(
            watched, key=lambda item: item[1][3], reverse=True
        ):
            print(_profile_line(file, line, name, calls, own, cumulative, n))


def _profile_line(
    file: str, line: int, name: str, calls: int, own: float, cumulative: float, n: int
) -> str:
    where = f"{Path(file).name}:{line}" if line else "~"
    return (
        f"    {own / n * 1e6:8.2f} own {cumulative / n * 1e6:8.2f} cum {calls:>8,}x  "
        f"{name} ({where})"
    )


# -- item 6: success path and queries -----------------------------------------------------
def success_path(n: int, rounds: int) -> None:
    async def noop(event: Event) -> None:
        return None

    async def bare() -> float:
        start = time.perf_counter()
        for i in range(n):
            await noop(Event(topic="t", payload={"i": i}))
        return n / (time.perf_counter() - start)

    async def through_bus() -> float:
        bus = EventBus(SQLiteStore(":memory:"))
        bus.subscribe("t", noop, name="noop")
        start = time.perf_counter()
        for i in range(n):
            await bus.publish("t", {"i": i})
        rate = n / (time.perf_counter() - start)
        await bus.stop()
        return rate

    medians = interleaved(
        rounds, {"bare": lambda k: asyncio.run(bare()), "bus": lambda k: asyncio.run(through_bus())}
    )
    print(f"Success path ({n:,} events, {rounds} rounds, medians):")
    report("  bare loop (Event + await handler)", medians["bare"], "ev/s")
    report(
        "  bus.publish, one no-op handler",
        medians["bus"],
        "ev/s",
        medians["bare"],
        "target >= 0.70",
    )


def query_path(folder: Path, rows: int) -> None:
    path = folder / "big.db"
    start = time.perf_counter()
    build_sqlite(path, rows)
    print(f"Queries at {rows:,} dead letters (built in {time.perf_counter() - start:.0f}s):")
    store = SQLiteStore(path)
    where = Filter(statuses=(Status.DEAD,), topic="topic.3")
    first, _ = latencies(lambda: store.find(where, limit=50), 100)
    report("  first page (status + topic), median", first, "ms", None, "target < 10 ms")
    oldest = store.ids(where, limit=rows)  # newest first: the deepest page starts near the end
    cursor = oldest[max(0, len(oldest) - 60)]
    deep, _ = latencies(lambda: store.find(where, limit=50, cursor=cursor), 100)
    report("  deepest keyset page, median", deep, "ms", first, "~1 = as fast as the first")
    stats, _ = latencies(lambda: store.stats(utcnow()), 30)
    counted = store.stats(utcnow()).total()
    assert counted == rows, f"stats() counts {counted} of {rows} records"
    conn = sqlite3.connect(path)
    scan = f"SELECT topic, status, COUNT(*) FROM {TABLE} GROUP BY 1, 2"
    group_by = timed(lambda: conn.execute(scan).fetchall(), 3) * 1000
    conn.close()
    report("  full GROUP BY over the table (what stats avoids)", group_by, "ms")
    report("  stats(), median", stats, "ms", group_by, "target < 10 ms")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--failures", type=int, default=10_000, help="dead letters per round")
    parser.add_argument("--publishers", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000, help="store size for queries")
    parser.add_argument("--events", type=int, default=50_000, help="success-path events")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite writes")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated parts to run, of {', '.join(PARTS)} (default: all)",
    )
    args = parser.parse_args()
    parts = [part.strip() for part in args.parts.split(",")]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    skipped = [part for part in PARTS if part not in parts]
    if args.no_postgres:
        skipped.append("postgres writes (--no-postgres)")
    if skipped:
        print(f"not run: {', '.join(skipped)}")
    with tempfile.TemporaryDirectory(prefix="redrive-bench-") as name:
        folder = Path(name)
        if "writes" in parts:
            if not args.no_sqlite:
                sqlite_writes(folder, args.failures, args.publishers, args.rounds)
            if not args.no_postgres:
                postgres_writes(args.failures, args.publishers, args.rounds)
        if "cpu" in parts:
            cpu_costs(folder, args.failures, args.publishers, args.rounds)
        if "breakdown" in parts:
            breakdown(folder, args.failures, args.publishers, not args.no_profile)
        if "success" in parts:
            success_path(args.events, args.rounds)
        if "queries" in parts:
            query_path(folder, args.rows)


if __name__ == "__main__":
    main()
