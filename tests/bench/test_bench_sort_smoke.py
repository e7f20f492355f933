"""Smoke test of bench/bench_sort.py on a small store: every part runs and prints its
figures, so the script cannot break unnoticed (the figures themselves live in bench/)."""

from __future__ import annotations

from tests.bench import run_bench


def test_sort_benchmark_runs_on_a_small_store() -> None:
    """Writes and pages at 3,000 records: a line per sort and filter, both write variants."""
    small = ["--rows", "3000", "--writes", "300", "--rounds", "1", "--calls", "3"]
    result = run_bench("bench_sort.py", *small)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("deepest page") == 18  # 6 sorts x 3 filters
    assert result.stdout.count("with the sort indexes") == 2  # synchronous FULL and OFF
