"""Smoke test of bench/bench_postgres.py on a small table: its parts run and print their
figures, so the script cannot break unnoticed (the figures themselves live in bench/)."""

from __future__ import annotations

import pytest

from tests.bench import run_bench


@pytest.mark.postgres
def test_postgres_benchmark_runs_on_a_small_table() -> None:
    """Writes and reads at 2,000 rows: the write ratio and every read figure."""
    result = run_bench("bench_postgres.py", "--rows", "2000", "--writes", "400")
    assert result.returncode == 0, result.stderr
    assert "EventBus -> PostgresStore" in result.stdout
    assert "raw executemany, 8/transaction" in result.stdout
    for read in ("list page (dead, newest 50)", "list page (deep keyset cursor)", "stats"):
        assert read in result.stdout
    assert "faster than a GROUP BY scan" in result.stdout
