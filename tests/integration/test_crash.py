"""A process killed with SIGKILL loses no event: what publish wrote is on disk, and a
record whose retry was cut off is retried by another process once its lease expires."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from redrive import EventBus, RetryPolicy, Status, open_store
from redrive.stores.base import Filter
from tests.helpers import eventually, wait_for

ROOT = Path(__file__).resolve().parents[2]


def start_app(db: Path, marker: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.crash_app", str(db), str(marker), mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def kill(process: subprocess.Popen[str]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    if process.stdout:
        process.stdout.close()


def test_records_survive_sigkill_right_after_publish(db_path: Path, tmp_path: Path) -> None:
    """Every failure publish reported is in the store after the process is killed."""
    app = start_app(db_path, tmp_path / "marker", "publish")
    assert app.stdout is not None and app.stdout.readline().strip() == "published"
    kill(app)
    store = open_store(f"sqlite:///{db_path}")
    assert store.count(Filter()) == 50
    store.close()


async def test_retry_cut_off_by_sigkill_runs_again_elsewhere(db_path: Path, tmp_path: Path) -> None:
    """A record whose worker died mid-retry is claimed again after its lease and resolved."""
    marker = tmp_path / "marker"
    app = start_app(db_path, marker, "hang")
    wait_for(marker.exists, timeout=30)
    kill(app)

    store = open_store(f"sqlite:///{db_path}")
    (stuck,) = store.find(Filter(), limit=5).items
    assert stuck.status == Status.RETRYING and stuck.lease_expires_at is not None
    bus = EventBus(store, poll_interval=0.05)
    bus.subscribe("t", lambda event: None, name="h", policy=RetryPolicy(initial_delay=0.01))
    async with bus:
        await eventually(lambda: store.count(Filter(statuses=(Status.RESOLVED,))) == 1)
    record = store.get(stuck.id)
    assert record is not None and record.lease_owner is None
    # The attempt the SIGKILL cut off is in the history too, counted by its claim.
    assert [h.kind for h in record.history] == ["attempt", "interrupted", "success"]
    assert record.attempts == 3
    store.close()
