"""Issue 3 benchmarks: the operator CLI on a big store, each command against raw SQL doing
the same work in the same run (target: within 3x).

- ``retry --all --topic T`` of 100,000 dead letters vs one UPDATE of the same rows;
- ``export --format jsonl`` of 100,000 records vs SELECT + json.dumps of the rows;
- ``stats`` vs GROUP BY topic, status over the table.

The CLI runs as the real ``redrive`` script (a subprocess: startup included) and, to
show where time goes, as the same service call in-process.

Run: .venv/bin/python bench/bench_cli.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import io
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import build_sqlite, report, timed

from redrive.models import Attempt, utcnow
from redrive.service import DeadLetterQueue, Filter
from redrive.stores.sql import COLUMNS, JSON_COLUMNS, TABLE, Dialect
from redrive.stores.sqlite import SQLiteStore

REDRIVE = str(Path(sys.executable).with_name("redrive"))
TOPICS = 10


def cli(path: Path, *args: str) -> float:
    """Wall time of the real script running ``args`` on the store."""
    start = time.perf_counter()
    subprocess.run(
        [REDRIVE, "--store", f"sqlite:///{path}", *args], check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def raw_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def raw_retry(path: Path, topic: str) -> None:
    """The replay as one UPDATE: the same columns the store's transition sets."""
    conn, now = raw_connection(path), utcnow()
    entry = json.dumps(Attempt(kind="replay", at=now, detail={"actor": "raw"}).to_dict())
    t = Dialect().encode_time(now)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        f"UPDATE {TABLE} SET status = 'scheduled', updated_at = ?, next_attempt_at = ?, "
        "history = json_insert(history, '$[#]', json(?)), replays = replays + 1, "
        "attempts = 0, lease_owner = NULL, lease_expires_at = NULL "
        "WHERE topic = ? AND status = 'dead' AND replays < 5",
        (t, t, entry, topic),
    )
    conn.execute("COMMIT")
    conn.close()


def raw_export(path: Path, topic: str, out: Path) -> None:
    """SELECT the rows and write each as a JSON line (JSON columns decoded)."""
    conn = raw_connection(path)
    json_at = [i for i, name in enumerate(COLUMNS) if name in JSON_COLUMNS]
    with out.open("w") as stream:
        for row in conn.execute(f"SELECT * FROM {TABLE} WHERE topic = ? ORDER BY id", (topic,)):
            values = list(row)
            for i in json_at:
                values[i] = json.loads(values[i])
            stream.write(json.dumps(dict(zip(COLUMNS, values, strict=False))) + "\n")
    conn.close()


def raw_stats(path: Path) -> None:
    conn = raw_connection(path)
    conn.execute(f"SELECT topic, status, COUNT(*) FROM {TABLE} GROUP BY topic, status").fetchall()
    conn.execute(
        f"SELECT topic, MIN(dead_at) FROM {TABLE} WHERE status = 'dead' GROUP BY topic"
    ).fetchall()
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    rows = parser.parse_args().rows
    per_topic = rows // TOPICS
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.db"
        start = time.perf_counter()
        build_sqlite(path, rows, topics=TOPICS)
        print(
            f"built {rows:,} dead letters in {time.perf_counter() - start:.1f}s "
            f"({per_topic:,} per topic)\n"
        )
        bench_retry(path, per_topic)
        bench_export(path, per_topic, Path(folder))
        bench_stats(path)


def bench_retry(path: Path, n: int) -> None:
    raw = timed(lambda: raw_retry(path, "topic.0"))
    report(f"retry: raw UPDATE of {n:,} rows", raw, "s")
    took = cli(path, "retry", "--all", "--topic", "topic.1", "--yes")
    report(f"retry: redrive retry --all --topic T ({n:,})", took, "s", raw, "target <= 3.00")
    store = SQLiteStore(path)
    dlq = DeadLetterQueue(store)
    service = timed(lambda: dlq.replay(where=Filter(topic="topic.2")))
    store.close()
    report("retry: DeadLetterQueue.replay in-process", service, "s", raw)


def bench_export(path: Path, n: int, folder: Path) -> None:
    raw = timed(lambda: raw_export(path, "topic.3", folder / "raw.jsonl"))
    report(f"export: raw SELECT + json.dumps of {n:,} rows", raw, "s")
    out = folder / "cli.jsonl"
    took = cli(
        path, "export", "--format", "jsonl", "--topic", "topic.3", "--status", "all", "-o", str(out)
    )
    report(f"export: redrive export --format jsonl ({n:,})", took, "s", raw, "target <= 3.00")
    store = SQLiteStore(path)
    dlq = DeadLetterQueue(store)
    where = Filter(topic="topic.3")
    service = timed(lambda: dlq.export(io.StringIO(), where=where, fmt="jsonl"))
    store.close()
    report("export: DeadLetterQueue.export in-process", service, "s", raw)


def bench_stats(path: Path) -> None:
    raw = timed(lambda: raw_stats(path), repeat=3)
    report("stats: raw GROUP BY topic, status (+ oldest dead)", raw * 1000, "ms")
    took = min(cli(path, "stats") for _ in range(3))
    report(
        "stats: redrive stats (process start included)",
        took * 1000,
        "ms",
        raw * 1000,
        "target <= 3.00",
    )
    store = SQLiteStore(path)
    dlq = DeadLetterQueue(store)
    service = timed(dlq.stats, repeat=3)
    store.close()
    report("stats: DeadLetterQueue.stats in-process", service * 1000, "ms", raw * 1000)


if __name__ == "__main__":
    main()
