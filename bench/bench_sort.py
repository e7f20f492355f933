"""Sorted dead-letter pages at scale (issue 12's sort, held to issue 14's query figures: a
page < 10 ms at 1M records, the deepest keyset page as fast as the first).

Builds a SQLite store of ``--rows`` records (95% dead, 5% scheduled with no dead_at; attempts
1-5 and dead_at times that disagree with id order), then for every sort and three filters
(status=dead as the console opens, status=dead + one topic, no filter as the API's default)
prints the median of the first page and of the deepest page (the page that starts 60 records
before the end), each as a ratio to the default sort's first page measured in the same run
(interleaved rounds: a few calls of every case per round).
First it measures what the sort indexes cost a write: a raw insert into redrive's schema with
them and without them (schema 5), interleaved rounds, medians.

Run: .venv/bin/python bench/bench_sort.py [--rows 1000000] [--calls 30] [--store PATH]
     [--writes 20000] [--rounds 3] [--parts writes,pages,postgres]
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.pg_server

from _common import make_records, report

from redrive.models import DeadLetter, Status
from redrive.stores.base import Filter, Store
from redrive.stores.paging import SORTS, cursor_of
from redrive.stores.sql import COLUMNS, TABLE, Dialect, record_to_row
from redrive.stores.sqlite import SQLiteStore

FILTERS = {
    "status=dead": Filter(statuses=(Status.DEAD,)),
    "status=dead, topic": Filter(statuses=(Status.DEAD,), topic="topic.3"),
    "no filter": Filter(),
}


def varied(rows: int) -> Iterator[DeadLetter]:
    rand = random.Random(12)
    for i, record in enumerate(make_records(rows)):
        if i % 20 == 19:
            yield record.replace(status=Status.SCHEDULED, dead_at=None, attempts=1)
            continue
        dead_at = record.created_at + timedelta(seconds=rand.randrange(3 * 86400))
        yield record.replace(attempts=1 + rand.randrange(5), dead_at=dead_at)


def build(path: Path, rows: int) -> None:
    SQLiteStore(path).close()  # the schema
    marks = ", ".join("?" * len(COLUMNS))
    insert = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({marks})"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    dialect, batch = Dialect(), []
    conn.execute("BEGIN")
    for record in varied(rows):
        batch.append(record_to_row(record, dialect))
        if len(batch) == 10_000:
            conn.executemany(insert, batch)
            batch = []
    conn.executemany(insert, batch)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def reverse(sort: str) -> str:
    return sort[1:] if sort.startswith("-") else f"-{sort}"


def measure(store: Store, calls: int, rounds: int = 3) -> None:
    """Every (filter, sort, first or deepest page) a few calls at a time, in interleaved
    rounds so a load spike hits them all alike; the median of all calls of each."""
    cases: dict[tuple[str, str, str], Callable[[], object]] = {}
    for label, where in FILTERS.items():
        cases[(label, "-created", "baseline")] = functools.partial(store.find, where, limit=50)
        for sort in SORTS:
            tail = store.find(where, limit=60, sort=reverse(sort)).items
            cursor = cursor_of(tail[-1], sort) if tail else None
            cases[(label, sort, "first")] = functools.partial(
                store.find, where, limit=50, sort=sort
            )
            cases[(label, sort, "deepest")] = functools.partial(
                store.find, where, limit=50, cursor=cursor, sort=sort
            )
    for call in cases.values():
        call()  # warm the cache
    samples: dict[tuple[str, str, str], list[float]] = {key: [] for key in cases}
    per_round = max(1, calls // rounds)
    for _ in range(rounds):
        for key, call in cases.items():
            for _ in range(per_round):
                start = time.perf_counter()
                call()
                samples[key].append((time.perf_counter() - start) * 1000)
    medians = {key: statistics.median(values) for key, values in samples.items()}
    for label in FILTERS:
        base = medians[(label, "-created", "baseline")]
        report(f"  {label}: -created first page (baseline)", base, "ms", None, "target < 10 ms")
        for sort in SORTS:
            first, deep = medians[(label, sort, "first")], medians[(label, sort, "deepest")]
            report(f"  {label}: {sort} first page", first, "ms", base, "target < 10 ms")
            report(f"  {label}: {sort} deepest page", deep, "ms", base, "~1 = as fast")


WITHOUT_SORT_INDEXES = (
    "DROP INDEX redrive_dl_dead_sort",
    "DROP INDEX redrive_dl_attempts_sort",
    f"CREATE INDEX redrive_dl_dead_at ON {TABLE} (status, topic, dead_at)",
)
"""The schema as it was before the sorts (schema 5): what the write cost compares with."""


def insert_rate(
    folder: Path, rows: list[tuple[object, ...]], *, sort_indexes: bool, sync: str
) -> float:
    """Rows/s of a raw executemany of ``rows`` into redrive's own schema (triggers and all),
    in 100-row transactions, WAL, ``synchronous=sync``: what the new indexes cost a write
    (FULL: as redrive writes; OFF: without the fsyncs, the indexes' CPU and I/O alone)."""
    path = folder / f"write-{sort_indexes}-{time.perf_counter_ns()}.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {sync}")
    if not sort_indexes:
        for statement in WITHOUT_SORT_INDEXES:
            conn.execute(statement)
    marks = ", ".join("?" * len(COLUMNS))
    insert = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({marks})"
    start = time.perf_counter()
    for i in range(0, len(rows), 100):
        conn.execute("BEGIN")
        conn.executemany(insert, rows[i : i + 100])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    for leftover in folder.glob(f"{path.name}*"):
        leftover.unlink()
    return len(rows) / elapsed


def write_cost(folder: Path, n: int, rounds: int) -> None:
    dialect = Dialect()
    rows = [record_to_row(r, dialect) for r in varied(n)]
    for sync in ("FULL", "OFF"):
        rates: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(rounds):  # interleaved: both variants see the same disk and load
            for variant in (False, True):
                rates[variant].append(insert_rate(folder, rows, sort_indexes=variant, sync=sync))
        before, after = statistics.median(rates[False]), statistics.median(rates[True])
        load = os.getloadavg()[0]
        print(f"Write cost, {n:,} rows, synchronous={sync}, {rounds} rounds, load {load:.1f}:")
        report("  raw insert, schema 5 indexes (baseline)", before, "rows/s")
        report("  raw insert, with the sort indexes", after, "rows/s", before)


def postgres_pages(rows: int, calls: int) -> None:
    """The same pages on PostgreSQL (fsync on), its own server in a temp dir."""
    import psycopg
    from tests.pg_server import PgServer

    from redrive.stores.postgres import PostgresStore

    server = PgServer(durable=True).start()
    try:
        url = server.create_database("sort")
        store = PostgresStore(url, pool_size=2)
        marks = ", ".join([store.dialect.param] * len(COLUMNS))
        insert = f"INSERT INTO redrive.{TABLE} ({', '.join(COLUMNS)}) VALUES ({marks})"
        start = time.perf_counter()
        with psycopg.connect(url, autocommit=False) as conn:
            batch: list[tuple[object, ...]] = []
            for record in varied(rows):
                batch.append(record_to_row(record, store.dialect))
                if len(batch) == 10_000:
                    conn.cursor().executemany(insert, batch)
                    conn.commit()
                    batch = []
            conn.cursor().executemany(insert, batch)
            conn.commit()
            conn.autocommit = True
            conn.execute(f"ANALYZE redrive.{TABLE}")
        print(
            f"PostgreSQL, {rows:,} records (loaded in {time.perf_counter() - start:.0f}s), "
            f"load average {os.getloadavg()[0]:.1f}:"
        )
        measure(store, calls)
        store.close()
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--store", type=Path, help="reuse (or build once) this SQLite file")
    parser.add_argument("--writes", type=int, default=20_000, help="rows per write round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parts", default="writes,pages", help="writes,pages,postgres")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory() as folder:
        if "writes" in parts:
            write_cost(Path(folder), args.writes, args.rounds)
        if "postgres" in parts:
            postgres_pages(args.rows, args.calls)
        if "pages" not in parts:
            return
        path = args.store or Path(folder) / "sort.db"
        if not path.exists():
            start = time.perf_counter()
            build(path, args.rows)
            print(f"built {args.rows:,} records in {time.perf_counter() - start:.0f}s")
        store = SQLiteStore(path)
        print(f"SQLite, {args.rows:,} records, load average {os.getloadavg()[0]:.1f}:")
        measure(store, args.calls)
        store.close()


if __name__ == "__main__":
    main()
