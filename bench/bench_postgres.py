"""PostgreSQL store benchmarks: figures and ratios against raw SQL measured in the same run.

1. Dead-letter writes with 8 concurrent failing publishers (EventBus -> BatchWriter ->
   PostgresStore.add) vs a raw ``executemany`` of the same rows, one transaction per batch.
2. At 1,000,000 rows: the list page (keyset), a filtered page, a deep keyset page, stats
   and the dead count, vs an OFFSET page deep in the table and a full GROUP BY.

Starts its own PostgreSQL (fsync on) in a temp dir and stops it at the end.
Usage: .venv/bin/python bench/bench_postgres.py [--rows 1000000] [--writes 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from tests.factories import make_record
from tests.pg_server import PgServer

from redrive import EventBus, RetryPolicy
from redrive.models import Status, utcnow
from redrive.stores.base import Filter
from redrive.stores.postgres import PostgresStore
from redrive.stores.postgres import queries as q
from redrive.stores.sql import COLUMN_LIST, COLUMNS, TABLE


def timed(fn: Callable[[], Any], runs: int = 30) -> float:
    """Median wall time of ``fn`` in milliseconds."""
    fn()  # warm up (plans, caches)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


async def bus_writes(store: PostgresStore, total: int, publishers: int = 8) -> float:
    """Records/s written by ``publishers`` tasks publishing events whose handler fails."""
    bus = EventBus(store, policy=RetryPolicy(max_attempts=1))

    @bus.handler("bench.writes", name="fails")
    async def fails(event: Any) -> None:
        raise ConnectionError("downstream unavailable")

    async def publisher(count: int) -> None:
        for i in range(count):
            await bus.publish("bench.writes", {"i": i, "text": "x" * 200})

    start = time.perf_counter()
    await asyncio.gather(*(publisher(total // publishers) for _ in range(publishers)))
    return total / (time.perf_counter() - start)


def raw_writes(url: str, total: int, batch: int) -> float:
    """Records/s of a raw executemany of equivalent rows, one transaction per batch."""
    dialect = q.PgDialect()
    rows = [q.row_of(make_record(topic="bench.raw"), dialect) for _ in range(total)]
    sql = f"INSERT INTO {TABLE} ({COLUMN_LIST}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
    with psycopg.connect(url) as conn:
        conn.execute("SET search_path TO redrive, public")
        conn.commit()
        start = time.perf_counter()
        for i in range(0, total, batch):
            with conn.cursor() as cur:
                cur.executemany(sql, rows[i : i + batch])
            conn.commit()
        return total / (time.perf_counter() - start)


LOAD = """
INSERT INTO redrive.redrive_dead_letters
SELECT format('%%s-7000-8000-%%s', lpad(to_hex(i), 13, '0'), lpad(to_hex(i %% 4096), 12, '0')),
  'e' || i, 'topic.' || (i %% 10), 'handler.' || (i %% 3),
  (ARRAY['dead','dead','dead','resolved','scheduled'])[1 + i %% 5],
  jsonb_build_object('order_id', i, 'customer', 'c' || (i %% 5000)), 'k' || (i %% 100), '{}',
  NULL, NULL, NULL, now(), 3, 3, 'ConnectionError', 'timeout talking to service ' || (i %% 50),
  'Traceback ...', 'fp' || (i %% 20), '[]', '{}', '{}', NULL,
  now() - make_interval(secs => 1000000 - i), now(),
  CASE WHEN i %% 5 = 4 THEN now() + interval '1 day' END,
  CASE WHEN i %% 5 < 3 THEN now() - make_interval(secs => 1000000 - i) END,
  NULL, 0, NULL, NULL
FROM generate_series(%s::bigint, %s::bigint) AS i
"""


def load(url: str, rows: int) -> float:
    """Bulk-load ``rows`` records with SQL (triggers and indexes included); seconds."""
    start = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for first in range(1, rows + 1, 100_000):
            conn.execute(LOAD, (first, min(rows, first + 99_999)))
        conn.execute("ANALYZE redrive.redrive_dead_letters")
    return time.perf_counter() - start


def reads(store: PostgresStore, url: str) -> None:
    """Median times of the list and stats queries, and of the raw slow alternatives."""
    dead = Filter(statuses=(Status.DEAD,))
    deep = store.ids(dead, limit=1, after="0000000a0000")  # a cursor deep in the table
    now = utcnow()
    figures = {
        "list page (dead, newest 50)": timed(lambda: store.find(dead, limit=50)),
        "list page (topic + dead)": timed(
            lambda: store.find(dead.replace(topic="topic.3"), limit=50)
        ),
        "list page (deep keyset cursor)": timed(
            lambda: store.find(dead, limit=50, cursor=deep[0] if deep else None)
        ),
        "list page (search 'service 7')": timed(
            lambda: store.find(dead.replace(search="service 7"), limit=50), runs=10
        ),
        "stats": timed(lambda: store.stats(now)),
        "count (dead)": timed(lambda: store.count(dead)),
    }
    with psycopg.connect(url) as conn:
        offset_sql = (
            "SELECT * FROM redrive.redrive_dead_letters WHERE status = 'dead' "
            "ORDER BY id DESC OFFSET 550000 LIMIT 50"
        )
        group_sql = "SELECT topic, status, count(*) FROM redrive.redrive_dead_letters GROUP BY 1, 2"
        offset_ms = timed(lambda: conn.execute(offset_sql).fetchall(), runs=5)
        group_ms = timed(lambda: conn.execute(group_sql).fetchall(), runs=5)
    for name, ms in figures.items():
        print(f"  {name:34s} {ms:8.2f} ms")
    print(f"  {'raw OFFSET page deep (baseline)':34s} {offset_ms:8.2f} ms")
    print(f"  {'raw full GROUP BY (baseline)':34s} {group_ms:8.2f} ms")
    print(
        f"  stats is {group_ms / figures['stats']:.0f}x faster than a GROUP BY scan;"
        f" keyset page {offset_ms / figures['list page (deep keyset cursor)']:.0f}x faster"
        " than OFFSET"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--writes", type=int, default=20_000)
    args = parser.parse_args()
    server = PgServer(durable=True).start()
    try:
        url = server.create_database("bench")
        store = PostgresStore(url, pool_size=4)
        print(f"dead-letter writes, {args.writes:,} records, 8 concurrent publishers:")
        ours = asyncio.run(bus_writes(store, args.writes))
        # Each publisher waits for its own record to be durable, so 8 publishers give
        # group commits of up to 8 records: the raw baseline commits the same batches.
        raw = raw_writes(url, args.writes, batch=8)
        raw_big = raw_writes(url, args.writes, batch=500)
        print(f"  EventBus -> PostgresStore        {ours:10,.0f} records/s")
        print(f"  raw executemany, 8/transaction   {raw:10,.0f} records/s")
        print(f"  ratio                            {ours / raw:10.0%}  (target >= 50%)")
        print(f"  (raw executemany, 500/transaction {raw_big:,.0f} records/s, for scale)")
        print(f"loading {args.rows:,} rows ...")
        print(f"  loaded in {load(url, args.rows):.0f}s")
        print(f"reads at {args.rows:,} rows (median):")
        reads(store, url)
        store.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
