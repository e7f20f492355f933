"""Outbox benchmarks: dispatch throughput with 1, 2 and 4 dispatcher processes against a raw
claim-with-SKIP-LOCKED + update loop doing the same work (a batch per transaction, run by
as many processes), and commit-to-handler latency.

Starts its own PostgreSQL (fsync on) in a temp dir and stops it at the end.
Usage: .venv/bin/python bench/bench_outbox.py [--events 50000] [--latency 200]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from tests.pg_server import PgServer

from redrive.models import Event
from redrive.outbox import Outbox
from redrive.stores.postgres import PostgresStore

BATCH = 1000
FILL = """
INSERT INTO redrive.redrive_outbox (event_id, topic, payload, key, next_attempt_at, created_at)
SELECT 'e' || i, 'orders.created', jsonb_build_object('order_id', i), 'k' || (i %% 100),
       now(), now()
FROM generate_series(1::bigint, %s::bigint) AS i
"""


def fill(url: str, events: int) -> None:
    """Empty the outbox and add ``events`` pending rows."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE redrive.redrive_outbox")
        conn.execute(FILL, (events,))
        conn.execute("VACUUM ANALYZE redrive.redrive_outbox")


def raw_loop(conn: psycopg.Connection[Any]) -> int:
    """Claim with SKIP LOCKED and mark done, a batch per transaction, until empty."""
    claim = (
        "WITH c AS MATERIALIZED (SELECT id FROM redrive.redrive_outbox WHERE status = 'pending' "
        "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
        "SELECT id, payload FROM redrive.redrive_outbox JOIN c USING (id)"
    )
    done = (
        "UPDATE redrive.redrive_outbox SET status = 'done', processed_at = now() WHERE id = ANY(%s)"
    )
    total = 0
    while True:
        rows = conn.execute(claim, (BATCH,)).fetchall()
        if not rows:
            conn.commit()
            return total
        conn.execute(done, ([r[0] for r in rows],))
        conn.commit()
        total += len(rows)


def raw_process(url: str, start: Any) -> None:
    """One raw loop process, started with the others."""
    with psycopg.connect(url) as conn:  # connected before the clock starts, as dispatchers are
        start.wait()
        raw_loop(conn)


def dispatcher(url: str, start: Any) -> None:
    """One dispatcher process: deliver to a no-op async publisher until nothing is left."""

    async def noop(event: Event) -> None:
        return None

    async def drain() -> None:
        store = PostgresStore(url, migrate=False, pool_size=2)
        outbox = Outbox(store, publisher=noop, batch_size=BATCH)
        start.wait()
        while await outbox.dispatch():
            pass
        outbox.close()
        store.close()

    asyncio.run(drain())


def with_processes(url: str, count: int, target: Any = dispatcher) -> float:
    """Seconds for ``count`` processes running ``target`` to drain the outbox."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=target, args=(url, start)) for _ in range(count)]
    for proc in procs:
        proc.start()
    time.sleep(3)  # let the processes import and connect before the clock starts
    began = time.perf_counter()
    start.set()
    for proc in procs:
        proc.join()
    return time.perf_counter() - began


async def latency(url: str, samples: int) -> list[float]:
    """Commit-to-publisher latencies (ms) with a dispatcher woken by LISTEN/NOTIFY."""
    store = PostgresStore(url, migrate=False)
    seen: dict[str, float] = {}
    arrived = asyncio.Event()

    async def publish(event: Event) -> None:
        seen[event.id] = time.perf_counter()
        arrived.set()

    outbox = Outbox(store, publisher=publish, poll_interval=60)
    task = asyncio.create_task(outbox.run())
    await asyncio.sleep(0.5)  # let run() start listening
    results = []
    conn = await asyncio.to_thread(psycopg.connect, url)
    for _ in range(samples):
        arrived.clear()
        event_id = outbox.add(conn, "orders.created", {"t": 1})
        await asyncio.to_thread(conn.commit)
        committed = time.perf_counter()
        await asyncio.wait_for(arrived.wait(), 10)
        results.append((seen[event_id] - committed) * 1000)
        await asyncio.sleep(0.005)  # pacing between samples
    conn.close()
    outbox.stop()
    await task
    outbox.close()
    store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--latency", type=int, default=200)
    args = parser.parse_args()
    server = PgServer(durable=True).start()
    try:
        url = server.create_database("bench")
        PostgresStore(url).close()  # migrate
        print(f"outbox dispatch, {args.events:,} events, batches of {BATCH}, no-op publisher:")
        for count in (1, 2, 4):
            fill(url, args.events)
            raw = args.events / with_processes(url, count, raw_process)
            fill(url, args.events)
            rate = args.events / with_processes(url, count, dispatcher)
            print(
                f"  {count} process(es): raw SKIP LOCKED loop {raw:8,.0f} events/s, "
                f"Outbox.dispatch {rate:8,.0f} events/s  {rate / raw:5.0%} of raw"
            )
        fill(url, 0)
        lat = asyncio.run(latency(url, args.latency))
        p99 = statistics.quantiles(lat, n=100)[98]
        print(f"commit -> publisher latency (LISTEN/NOTIFY), {len(lat)} events:")
        print(f"  median {statistics.median(lat):.2f} ms, p99 {p99:.2f} ms")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
