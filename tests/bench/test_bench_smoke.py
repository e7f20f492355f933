"""Smoke test of bench/bench_pipeline.py: its redrive parts run and verify, so the
benchmark cannot rot unnoticed. No timing is asserted (speed lives in bench/)."""

from __future__ import annotations

import pytest

from tests.bench import run_bench

SYSTEMS = (
    "redrive bus, SQLite",
    "redrive bus, PostgreSQL",
    "redrive outbox, SQLite",
    "redrive outbox, PostgreSQL",
)


@pytest.mark.postgres
def test_quick_pipeline_settles_and_verifies_every_redrive_system() -> None:
    """`bench_pipeline.py --quick --redrive-only` settles all four redrive systems, each
    verified in its store (poison events dead, transient ones resolved, handler calls)."""
    done = run_bench("bench_pipeline.py", "--quick", "--redrive-only", timeout=100)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "peers: not run (--redrive-only)" in lines
    for name in SYSTEMS:
        rounds = [line for line in lines if line.startswith(f"  round 1: {name} ")]
        assert len(rounds) == 1, done.stdout
        assert rounds[0].endswith("verified"), rounds[0]
