"""Shared helpers of the benchmarks: timing, printing, building big stores fast."""

from __future__ import annotations

import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from redrive._ids import new_id
from redrive.models import Attempt, DeadLetter, Event, Status, utcnow
from redrive.stores.sql import COLUMNS, TABLE, Dialect, record_to_row
from redrive.stores.sqlite import SQLiteStore
from redrive.stores.sqlite.tallies import Tallies, of_row


def timed(fn: Callable[[], Any], repeat: int = 1) -> float:
    """Best wall time of ``repeat`` runs of ``fn``, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def latencies(fn: Callable[[], Any], n: int) -> tuple[float, float]:
    """(median, p99) in milliseconds of ``n`` calls of ``fn``."""
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(n * 0.99))]


def report(
    name: str, value: float, unit: str, baseline: float | None = None, target: str = ""
) -> None:
    """Print one figure, with its ratio to a baseline measured in the same run."""
    ratio = f"  ratio {value / baseline:6.2f}" if baseline else ""
    print(f"{name:<58} {value:>12,.2f} {unit:<8}{ratio}  {target}".rstrip())


TRACEBACK = 'Traceback (most recent call last):\n  File "app.py", line 1\nConnectionError\n'


def build_sqlite(path: Path, rows: int, *, topics: int = 10) -> None:
    """A SQLite store of ``rows`` dead letters over ``topics`` topics, written with raw
    executemany (the schema comes from ``SQLiteStore``): minutes for a million, not hours.
    The counts, groups and timeline are kept as the store keeps them (``Tallies``)."""
    SQLiteStore(path).close()  # the schema
    tallies = Tallies()
    insert = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    dialect, batch = Dialect(), []
    conn.execute("BEGIN")
    for record in make_records(rows, topics=topics):
        row = record_to_row(record, dialect)
        tallies.came(of_row(row))
        batch.append(row)
        if len(batch) == 10_000:
            conn.executemany(insert, batch)
            batch = []
    conn.executemany(insert, batch)
    tallies.apply(conn)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def make_records(
    n: int, *, topics: int = 10, status: Status = Status.DEAD, spread: timedelta = timedelta(days=7)
) -> Iterator[DeadLetter]:
    """``n`` plausible dead letters over ``topics`` topics and 50 fingerprints."""
    now = utcnow()
    step = spread / max(n, 1)
    history = (Attempt(kind="attempt", at=now, error_type="ConnectionError", duration=0.01),)
    for i in range(n):
        at = now - spread + step * i
        topic = f"topic.{i % topics}"
        yield DeadLetter(
            id=new_id(),
            event=Event(
                topic=topic, payload={"order_id": i, "sku": f"SKU-{i % 977}"}, occurred_at=at
            ),
            handler=f"app.handler_{i % 3}",
            status=status,
            attempts=3,
            max_attempts=3,
            error_type="ConnectionError",
            error_message=f"inventory {i % 50} unavailable",
            traceback=TRACEBACK,
            fingerprint=f"{i % 50:016x}",
            created_at=at,
            updated_at=at,
            history=history,
            consumer={"service": "bench", "version": f"1.{i % 4}"},
            dead_at=at if status == Status.DEAD else None,
        )
