"""Issue 2 benchmarks: success path, failure path and query path, each against a baseline
measured in the same run. Run: .venv/bin/python bench/bench_core.py [--rows 1000000]"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from _common import latencies, make_records, report, timed

from redrive import Event, EventBus, NonRetriableError, open_store
from redrive.models import Status, utcnow
from redrive.stores.base import Filter
from redrive.stores.sql import COLUMN_LIST, COLUMNS, Dialect, record_to_row
from redrive.stores.sqlite import SQLiteStore


async def success_path(n: int) -> None:
    async def noop(event: Event) -> None:
        return None

    store = open_store("sqlite:///:memory:")
    bus = EventBus(store)
    bus.subscribe("t", noop, name="noop")

    async def bare() -> None:
        for i in range(n):
            await noop(Event(topic="t", payload={"i": i}))

    async def through_bus() -> None:
        for i in range(n):
            await bus.publish("t", {"i": i})

    base = await _timed_async(bare)
    bus_time = await _timed_async(through_bus)
    report("success: bare loop (Event + await handler)", n / base, "ev/s")
    report(
        "success: bus.publish, one no-op handler", n / bus_time, "ev/s", n / base, "target >= 0.50"
    )


async def _timed_async(fn) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        await fn()
        best = min(best, time.perf_counter() - start)
    return best


async def failure_path(n: int, publishers: int, folder: Path) -> None:
    store = SQLiteStore(folder / "failures.db")
    bus = EventBus(store)

    async def poison(event: Event) -> None:
        raise NonRetriableError(f"order {event.payload['i']} is invalid")

    bus.subscribe("orders", poison, name="poison")
    per = n // publishers

    async def publisher(k: int) -> None:
        for i in range(per):
            await bus.publish("orders", {"i": k * per + i})

    start = time.perf_counter()
    await asyncio.gather(*(publisher(k) for k in range(publishers)))
    elapsed = time.perf_counter() - start
    written = store.count(Filter())
    assert written == per * publishers, written

    # Baseline: the same rows, built in advance, inserted raw in batches of 1,000.
    rows = [record_to_row(r, Dialect()) for r in store.find(Filter(), limit=written).items]
    raw = SQLiteStore(folder / "raw.db")
    raw.close()
    conn = sqlite3.connect(folder / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    marks = ", ".join("?" * len(COLUMNS))
    insert = f"INSERT INTO redrive_dead_letters ({COLUMN_LIST}) VALUES ({marks})"
    start = time.perf_counter()
    for i in range(0, len(rows), 1000):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert, rows[i : i + 1000])
        conn.execute("COMMIT")
    raw_elapsed = time.perf_counter() - start
    report("failure: raw executemany, batches of 1,000", len(rows) / raw_elapsed, "rows/s")
    report(
        f"failure: {publishers} publishers, all fail non-retriably",
        written / elapsed,
        "dl/s",
        len(rows) / raw_elapsed,
        "target >= 0.50",
    )
    store.close()


def query_path(rows: int, folder: Path) -> None:
    path = folder / "big.db"
    store = SQLiteStore(path)
    start = time.perf_counter()
    batch = []
    for record in make_records(rows):
        batch.append(record)
        if len(batch) == 10_000:
            store.add(batch)
            batch = []
    if batch:
        store.add(batch)
    print(f"(built a store of {rows:,} dead letters in {time.perf_counter() - start:.0f}s)")

    where = Filter(statuses=(Status.DEAD,), topic="topic.3")
    median, _ = latencies(lambda: store.find(where, limit=50), 200)
    report("query: first page (status + topic), median", median, "ms", None, "target < 10 ms")
    # The deepest page: its cursor is among the oldest matching ids.
    deepest = store.ids(where, limit=100)[60]
    median_deep, _ = latencies(lambda: store.find(where, limit=50, cursor=deepest), 200)
    report("query: deepest keyset page, median", median_deep, "ms", median, "~1 = as fast")
    median_stats, _ = latencies(lambda: store.stats(utcnow()), 50)
    conn = sqlite3.connect(path)
    scan = "SELECT topic, status, COUNT(*) FROM redrive_dead_letters GROUP BY 1, 2"
    group_by = timed(lambda: conn.execute(scan).fetchall(), 3) * 1000
    report("query: full GROUP BY over the table (baseline)", group_by, "ms")
    report("query: stats(), median", median_stats, "ms", group_by, "target < 10 ms")
    median_search, _ = latencies(lambda: store.find(Filter(search="SKU-976"), limit=50), 5)
    report("query: text search in payload (scan), median", median_search, "ms")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--failures", type=int, default=50_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(success_path(args.events))
        asyncio.run(failure_path(args.failures, 100, Path(folder)))
        query_path(args.rows, Path(folder))


if __name__ == "__main__":
    main()
