"""celery + Redis, configured for this workload (runs in the peers' venv only).

Settings, from celery's docs ("Tasks: Retrying", "Optimizing", configuration): broker and
result backend on Redis; ``task_ignore_result=True`` with
``task_store_errors_even_if_ignored=True`` (only failures are stored: the result backend
is celery's only record of a failed task, status, exception and traceback);
``task_acks_late=True`` and ``task_reject_on_worker_lost=True`` (a message is acked after
its task ran, so a worker crash does not lose it: the at-least-once delivery the other
systems give); ``worker_prefetch_multiplier=16`` (the docs: a higher value for many short
tasks; default 4); retries by ``self.retry(countdown=..., max_retries=2)`` with the
workload's 10 ms doubling backoff (``autoretry_for``'s ``retry_backoff`` counts whole
seconds); a poison task raises and is not retried. Worker: prefork pool,
``--concurrency 2`` (= CPU count, the default), ``--without-gossip --without-mingle``
(no cluster chatter at start).
"""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_process_init

from peers.plan import MAX_ATTEMPTS, Calls, Transient, delay, handle

app = Celery(
    "pipeline", broker=os.environ["BENCH_REDIS_URL"], backend=os.environ["BENCH_REDIS_URL"]
)
app.conf.update(
    task_ignore_result=True,
    task_store_errors_even_if_ignored=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=16,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
calls = Calls()


@worker_process_init.connect
def _start_counts(**kwargs: object) -> None:
    if os.environ.get("BENCH_COUNTS"):
        calls.flush_to(os.environ["BENCH_COUNTS"])


@app.task(bind=True, name="pipeline")
def pipeline(self, i: int) -> None:  # type: ignore[no-untyped-def]
    try:
        handle(calls, i, self.request.retries + 1)
    except Transient as exc:
        retry = self.request.retries + 1
        raise self.retry(exc=exc, countdown=delay(retry), max_retries=MAX_ATTEMPTS - 1) from exc


def enqueue(events: range) -> None:
    for i in events:
        pipeline.delay(i)


def _results() -> list[dict[str, object]]:
    """Every result celery stored: the failures, and a RETRY state left by each retry."""
    import json

    client = app.backend.client
    keys = list(client.scan_iter("celery-task-meta-*", count=1000))
    return [json.loads(value) for value in client.mget(keys)] if keys else []


def dead_count() -> int:
    return sum(1 for result in _results() if result["status"] == "FAILURE")


def check_store(n: int, dead: int) -> list[str]:
    """Failures in celery's result backend: exactly the poison tasks, with tracebacks."""
    results = _results()
    failed = [r for r in results if r["status"] == "FAILURE"]
    poison = [r for r in failed if "Poison" in str(r["traceback"])]
    if len(failed) != dead or len(poison) != dead:
        return [
            f"result backend holds {len(failed)} failures ({len(poison)} poison), expected {dead}"
        ]
    return []


def reset() -> None:
    app.backend.client.flushall()


def worker_command(python: str) -> tuple[list[str], int]:
    return [
        python,
        "-m",
        "celery",
        "-A",
        "peers.celery_app",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        "2",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "WARNING",
    ], 2


WORKER_ENV: dict[str, str] = {}
