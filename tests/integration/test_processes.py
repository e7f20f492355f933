"""Several processes on one SQLite file: each due record runs exactly once."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from redrive.models import Status, utcnow
from redrive.stores.base import Filter
from redrive.stores.sqlite import SQLiteStore
from tests.factories import make_record
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_three_worker_processes_share_one_file(db_path: Path, tmp_path: Path) -> None:
    """300 due records handled by three worker processes: every one exactly once."""
    store = SQLiteStore(db_path)
    records = [
        make_record(topic="t", handler="h", status=Status.SCHEDULED, next_attempt_at=utcnow())
        for _ in range(300)
    ]
    store.add(records)
    outs = [tmp_path / f"worker{i}.log" for i in range(3)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.integration.worker_app", str(db_path), str(out)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for out in outs
    ]
    try:
        wait_for(lambda: store.count(Filter(statuses=(Status.RESOLVED,))) == 300, timeout=60)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            if worker.stdout:
                worker.stdout.close()
    runs = Counter(line for out in outs if out.exists() for line in out.read_text().split())
    assert sorted(runs) == sorted(r.event.id for r in records)
    assert set(runs.values()) == {1}
    store.close()
