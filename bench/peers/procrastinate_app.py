"""procrastinate + PostgreSQL, configured for this workload (runs in the peers' venv only).

Settings, from procrastinate's docs ("Retry a job", "Worker", "Connectors"):
``App(connector=PsycopgConnector(conninfo=...))``; the task's ``retry`` is a
``BaseRetryStrategy`` whose ``get_retry_decision`` retries a transient error after 10 ms
doubling to 100 ms, at most 3 attempts, and never retries ``Poison`` (the job ends
``failed``: procrastinate's store of failed jobs, with its events); the job is deferred
with ``defer_async`` (one INSERT per job, committed). Workers: 2 processes (one per CPU)
each ``--concurrency 10``, LISTEN/NOTIFY on (the default), and
``--fetch-job-polling-interval 0.1`` (default 5 s): a retry scheduled in the future gets
no NOTIFY, so a worker finds it on its next poll; 100 ms is the bound this benchmark gives
every polling system. PostgreSQL runs with fsync on, as for redrive.
"""

from __future__ import annotations

import asyncio
import os

from procrastinate import App, BaseRetryStrategy, JobContext, PsycopgConnector, RetryDecision

from peers.plan import MAX_ATTEMPTS, Calls, Poison, delay, handle

app = App(connector=PsycopgConnector(conninfo=os.environ["BENCH_PG_URL"]))
calls = Calls()
if os.environ.get("BENCH_COUNTS"):
    calls.flush_to(os.environ["BENCH_COUNTS"])


class Backoff(BaseRetryStrategy):
    """Retry all but poison: 10 ms doubling to 100 ms, at most 3 attempts in all."""

    def get_retry_decision(self, *, exception: BaseException, job) -> RetryDecision | None:  # type: ignore[no-untyped-def]
        attempts = job.attempts  # earlier attempts of this job
        if isinstance(exception, Poison) or attempts + 1 >= MAX_ATTEMPTS:
            return None
        return RetryDecision(retry_in={"seconds": delay(attempts + 1)})


@app.task(name="pipeline", retry=Backoff(), pass_context=True)
async def pipeline(context: JobContext, i: int) -> None:
    handle(calls, i, context.job.attempts + 1)


async def enqueue_async(shares: list[range]) -> None:
    """Defer the events, one ``defer_async`` (one committed INSERT) each, one task per
    producer over the connector's pool."""

    async def produce(events: range) -> None:
        for i in events:
            await pipeline.defer_async(i=i)

    async with app.open_async():
        await asyncio.gather(*(produce(events) for events in shares))


def _status_counts() -> dict[str, int]:
    import psycopg

    with psycopg.connect(os.environ["BENCH_PG_URL"]) as conn:
        rows = conn.execute("SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY 1")
        return dict(rows.fetchall())


def dead_count() -> int:
    return _status_counts().get("failed", 0)


def check_store(n: int, dead: int) -> list[str]:
    """Jobs in procrastinate's table: the poison ones failed after one attempt, the others
    succeeded, the transient ones after two."""
    import psycopg

    from peers.plan import kind

    problems = []
    with psycopg.connect(os.environ["BENCH_PG_URL"]) as conn:
        rows = conn.execute(
            "SELECT (args->>'i')::int, status::text, attempts FROM procrastinate_jobs"
        ).fetchall()
    # The ``attempts`` column counts the attempts run (the job object a task sees holds
    # the attempts before the current one).
    want = {"poison": ("failed", 1), "transient": ("succeeded", 2), "ok": ("succeeded", 1)}
    wrong = [r for r in rows if (r[1], r[2]) != want[kind(r[0])]]
    if len(rows) != n or wrong:
        problems.append(f"{len(rows)} jobs, {len(wrong)} not as expected, e.g. {wrong[:3]}")
    return problems


def reset() -> None:
    import psycopg

    with psycopg.connect(os.environ["BENCH_PG_URL"], autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
        if exists is None or exists[0] is None:
            with app.open():
                app.schema_manager.apply_schema()
        else:
            conn.execute(
                "TRUNCATE procrastinate_jobs, procrastinate_events, "
                "procrastinate_workers RESTART IDENTITY CASCADE"
            )


def worker_command(python: str) -> tuple[list[str], int]:
    return [
        python,
        "-m",
        "procrastinate",
        "--app=peers.procrastinate_app.app",
        "worker",
        "--concurrency",
        "10",
        "--fetch-job-polling-interval",
        "0.1",
    ], 1


COPIES = 2  # worker processes started with worker_command
WORKER_ENV: dict[str, str] = {}
