"""Smoke test of bench/bench_failures.py's SQLite dead-letter writes: the script runs,
checks that every dead letter was written, and prints each figure with its ratio to the
baseline, the ceilings too. No timing is asserted (speed lives in bench/)."""

from __future__ import annotations

from tests.bench import run_bench


def test_sqlite_writes_print_every_figure_against_the_baseline() -> None:
    done = run_bench(
        "bench_failures.py", "--parts", "writes", "--failures", "500", "--rounds", "1",
        "--no-postgres", timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    figures = [line.strip() for line in done.stdout.splitlines() if " ratio " in line]
    expected = (
        "raw executemany, 100/txn, redrive's schema",
        "SQLiteStore.add, 100/txn",
        "EventBus, 100 publishers, all fail non-retriably",
        "into the minimal table",
        "into redrive's schema",
    )
    assert len(figures) == len(expected), done.stdout
    for line, name in zip(figures, expected, strict=True):
        assert line.startswith(name), (line, name)
    assert "minimal table (baseline)" in done.stdout
