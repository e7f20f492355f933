"""Issue 5 benchmark: the REST API on 1,000,000 records, served by uvicorn (the real
``redrive serve``) and loaded from 127.0.0.1 by an asyncio + httpx load generator.

For the list, detail and stats endpoints it prints requests/s and p50/p99 latency, at one
client (latency) and at several (throughput), and the same call made in-process on the
service as the baseline (ratio = HTTP p50 / in-process p50). Target: list p50 < 20 ms.

The load generator shares the machine with the server, so the figures are conservative.

Run: .venv/bin/python bench/bench_api.py [--rows 1000000] [--seconds 8] [--clients 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from _common import build_sqlite, latencies, report

from redrive.ops.auth import Tokens
from redrive.service import DeadLetterQueue
from redrive.stores.sql import TABLE
from redrive.stores.sqlite import SQLiteStore

REDRIVE = str(Path(sys.executable).with_name("redrive"))
RESULTS = Path(__file__).parent / "results"


def store_rows(path: Path) -> int:
    if not path.exists():
        return 0
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def start_server(path: Path, port: int) -> subprocess.Popen[bytes]:
    """``redrive serve`` on the store; returns once /healthz answers."""
    proc = subprocess.Popen(
        [
            REDRIVE,
            "--store",
            f"sqlite:///{path}",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


async def load(
    url: str, token: str, paths: Callable[[], str], clients: int, seconds: float
) -> list[float]:
    """Latencies (ms) of GETs from ``clients`` concurrent clients for ``seconds``."""
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                response = await client.get(paths())
                samples.append((time.perf_counter() - start) * 1000)
                if response.status_code != 200:
                    raise SystemExit(f"{response.status_code} {response.text[:200]}")

        await asyncio.gather(*(worker() for _ in range(clients)))
    return samples


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--port", type=int, default=18765)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"api-{args.rows}.db"
    if store_rows(path) != args.rows:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        start = time.perf_counter()
        build_sqlite(path, args.rows)
        print(f"built {args.rows:,} records in {time.perf_counter() - start:.1f}s")
    store = SQLiteStore(path)
    service = DeadLetterQueue(store)
    tokens = Tokens(service)
    for info in tokens.list():
        tokens.revoke(info.id)
    token, _ = tokens.create("bench", "viewer")
    ids = [r.id for r in service.list(limit=1000).items]
    ids += [r.id for r in service.list(limit=1000, topic="topic.3", cursor=ids[-1]).items]
    rng = random.Random(7)
    endpoints: dict[str, tuple[Callable[[], str], Callable[[], Any]]] = {
        "list (50, newest)": (
            lambda: "/api/v1/dead-letters?limit=50",
            lambda: service.list(limit=50),
        ),
        "list (50, topic+status)": (
            lambda: "/api/v1/dead-letters?limit=50&topic=topic.3&status=dead",
            lambda: service.list(limit=50, topic="topic.3", status="dead"),
        ),
        "detail": (
            lambda: f"/api/v1/dead-letters/{rng.choice(ids)}",
            lambda: service.get(rng.choice(ids)),
        ),
        "stats": (lambda: "/api/v1/stats", service.stats),
    }
    proc = start_server(path, args.port)
    url = f"http://127.0.0.1:{args.port}"
    results: dict[str, Any] = {"rows": args.rows, "clients": args.clients}
    try:
        print(f"\n{args.rows:,} records; {os.cpu_count()} CPUs shared by server and load")
        for name, (paths, inproc) in endpoints.items():
            base_p50, _ = latencies(inproc, 200)
            single = asyncio.run(load(url, token, paths, 1, args.seconds / 2))
            many = asyncio.run(load(url, token, paths, args.clients, args.seconds))
            p50, p99 = percentiles(single)
            c_p50, c_p99 = percentiles(many)
            rps = len(many) / args.seconds
            target = "(target < 20 ms)" if name.startswith("list") else ""
            report(f"{name}: p50, 1 client", p50, "ms", base_p50, target)
            report(f"{name}: p99, 1 client", p99, "ms")
            report(f"{name}: requests/s, {args.clients} clients", rps, "req/s")
            report(f"{name}: p50, {args.clients} clients", c_p50, "ms")
            report(f"{name}: p99, {args.clients} clients", c_p99, "ms")
            results[name] = {
                "p50_ms": p50,
                "p99_ms": p99,
                "inprocess_p50_ms": base_p50,
                "rps": rps,
                "p50_loaded_ms": c_p50,
                "p99_loaded_ms": c_p99,
            }
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        store.close()
    (RESULTS / "bench_api.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
