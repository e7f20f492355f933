"""What each index of redrive's SQLite schema costs a dead-letter write (issue 14, item 2).

A raw executemany (100 rows per transaction, WAL, synchronous=FULL) of 5,000 dead letters
written by an EventBus, into redrive's schema, then into the same schema without one index
at a time. Two measures: CPU time per row (process time, so other processes' load matters
less) and WAL pages per transaction (deterministic: what each commit writes and fsyncs).
Medians of interleaved rounds.

Usage: .venv/bin/python bench/sqlite_index_costs.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_failures import sqlite_bus

from redrive.stores.sqlite import SQLiteStore

TABLE = "redrive_dead_letters"
LIST = ("redrive_dl_status", "redrive_dl_topic", "redrive_dl_fingerprint")
TXN = 100


def insert_cost(folder: Path, rows: list[Any], columns: list[str], drop: list[str]) -> Any:
    """(CPU us per row, WAL pages per transaction) of inserting ``rows`` without ``drop``."""
    path = folder / "target.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    for name in drop:
        conn.execute(f"DROP INDEX {name}")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")  # the WAL keeps every page written
    marks = ", ".join("?" * len(columns))
    insert = f"INSERT INTO {TABLE} ({', '.join(columns)}) VALUES ({marks})"
    start = time.process_time()
    for i in range(0, len(rows), TXN):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert, rows[i : i + TXN])
        conn.execute("COMMIT")
    cpu = time.process_time() - start
    pages = os.path.getsize(f"{path}-wal") / 4096 / (len(rows) / TXN)
    conn.close()
    for file in folder.glob("target.db*"):
        file.unlink()
    return cpu / len(rows) * 1e6, pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="redrive-index-costs-"))
    source = folder / "source.db"
    sqlite_bus(source, args.rows, 100)
    conn = sqlite3.connect(source)
    columns = [row[1] for row in conn.execute(f"PRAGMA table_info({TABLE})")]
    rows = conn.execute(f"SELECT {', '.join(columns)} FROM {TABLE}").fetchall()
    indexes = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
            "AND sql IS NOT NULL",
            (TABLE,),
        )
    ]
    conn.close()
    variants = {"none": [], "all but the list page's three": [i for i in indexes if i not in LIST]}
    variants.update({name: [name] for name in indexes})
    samples: dict[str, list[Any]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, drop in variants.items():
            samples[name].append(insert_cost(folder, rows, columns, drop))
    cpu = {name: statistics.median(s[0] for s in values) for name, values in samples.items()}
    pages = {name: statistics.median(s[1] for s in values) for name, values in samples.items()}
    print(
        f"redrive's schema: {cpu['none']:.1f} us CPU per row, {pages['none']:.1f} WAL pages "
        f"per {TXN}-row transaction ({args.rounds} rounds, medians). Without:"
    )
    for name in list(variants)[1:]:
        print(
            f"  {name:32s} saves {cpu['none'] - cpu[name]:5.1f} us CPU/row, "
            f"{pages['none'] - pages[name]:5.1f} WAL pages/txn"
        )


if __name__ == "__main__":
    main()
