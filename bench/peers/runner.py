"""Run one peer through the failure pipeline and print one JSON line (peers' venv only).

``python -m peers.runner SYSTEM --events N`` with ``BENCH_REDIS_URL`` / ``BENCH_PG_URL``
set: empties the peer's store, starts its workers (each in its own session, stopped by
PID at the end), waits until every handler process has started, then times from the first
enqueue until every event is settled (handler counts, and the dead letters in the peer's
own store), verifies the store and the handler calls, and prints
``{"seconds": ..., "problems": [...]}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from peers.plan import check_calls, expected, read_counts, settled, shares


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a worker (its master and the processes it forked) by its PID: SIGTERM (warm
    shutdown), then SIGKILL of its process group if it is still there."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _wait(what: str, check, timeout: float = 60.0, interval: float = 0.005) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f}s")
        time.sleep(interval)


def run(system: str, n: int, deadline: float = 300.0, producers: int = 1) -> dict[str, object]:
    app = importlib.import_module(f"peers.{system}_app")
    counts = Path(tempfile.mkdtemp(prefix=f"bench-{system}-"))
    env = {
        **os.environ,
        **app.WORKER_ENV,
        "BENCH_COUNTS": str(counts),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    app.reset()
    command, handlers = app.worker_command(sys.executable)
    copies = getattr(app, "COPIES", 1)
    logs = counts / "logs"
    logs.mkdir()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for k in range(copies):
            with open(logs / f"worker-{k}.log", "wb") as log:
                workers.append(
                    subprocess.Popen(
                        command,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        _wait(
            "workers did not start", lambda: len(list(counts.glob("*.json"))) >= handlers * copies
        )
        time.sleep(1.0)  # let the workers finish connecting and start consuming
        want = expected(n)
        start = time.perf_counter()
        if hasattr(app, "enqueue_async"):
            asyncio.run(app.enqueue_async(shares(n, producers)))
        elif producers == 1:
            app.enqueue(range(n))
        else:
            with ThreadPoolExecutor(producers) as pool:
                list(pool.map(app.enqueue, shares(n, producers)))
        give_up = time.monotonic() + deadline
        while not (settled(read_counts(counts), n) and app.dead_count() == want["dead"]):
            if time.monotonic() > give_up or any(w.poll() is not None for w in workers):
                raise TimeoutError(
                    f"not settled: {dict(read_counts(counts))}, dead {app.dead_count()}"
                )
            time.sleep(0.005)
        seconds = time.perf_counter() - start
        time.sleep(0.1)  # a late extra call (a duplicate delivery) would show in the counts
        problems = check_calls(read_counts(counts), n) + app.check_store(n, want["dead"])
        return {"seconds": seconds, "problems": problems}
    except Exception as exc:
        tail = "".join(p.read_text(errors="replace")[-2000:] for p in logs.glob("*.log"))
        return {"seconds": None, "problems": [f"{type(exc).__name__}: {exc}"], "log": tail}
    finally:
        for worker in workers:
            _stop(worker)
        shutil.rmtree(counts, ignore_errors=True)


def main() -> None:
    # Stopped from outside (the benchmark's own timeout): stop the workers on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser()
    parser.add_argument("system", choices=("dramatiq", "celery", "procrastinate"))
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds to settle")
    parser.add_argument("--producers", type=int, default=1, help="concurrent producers")
    args = parser.parse_args()
    result = run(args.system, args.events, args.deadline, args.producers)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
