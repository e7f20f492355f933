"""dramatiq + Redis, configured for this workload (runs in the peers' venv only).

Settings, from dramatiq's docs ("Retries", "Brokers", CLI): ``RedisBroker(url=...)``
with the default middleware (its ``Retries`` takes ``max_retries=2`` (3 attempts),
``min_backoff=10`` ms, ``max_backoff=100`` ms (dramatiq adds jitter: 1-2x the delay),
``throws=(Poison,)``: a poison message fails at once and goes to the dead-letter queue
``dramatiq:default.XQ``); ``CurrentMessage`` middleware so the handler sees its retry
count; the worker CLI's defaults, 2 processes x 8 threads (= CPU count x 8); and
``dramatiq_worker_timeout=100`` (ms; default 1000): an idle queue, the delay queue
included, is looked at every 100 ms, the bound this benchmark gives every polling system.
Redis runs without persistence, or with ``appendonly yes`` + ``appendfsync always``.
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

from peers.plan import INITIAL_DELAY, MAX_ATTEMPTS, MAX_DELAY, Calls, Poison, handle

broker = RedisBroker(url=os.environ["BENCH_REDIS_URL"])
broker.add_middleware(CurrentMessage())
dramatiq.set_broker(broker)
calls = Calls()
if os.environ.get("BENCH_COUNTS"):
    calls.flush_to(os.environ["BENCH_COUNTS"])


@dramatiq.actor(
    max_retries=MAX_ATTEMPTS - 1,
    min_backoff=int(INITIAL_DELAY * 1000),
    max_backoff=int(MAX_DELAY * 1000),
    throws=(Poison,),
)
def pipeline(i: int) -> None:
    message = CurrentMessage.get_current_message()
    retries = message.options.get("retries", 0) if message is not None else 0
    handle(calls, i, retries + 1)


def enqueue(events: range) -> None:
    for i in events:
        pipeline.send(i)


def dead_count() -> int:
    return int(broker.client.zcard("dramatiq:default.XQ"))


def check_store(n: int, dead: int) -> list[str]:
    """Dead letters in dramatiq's own store: the XQ holds exactly the poison messages."""
    import json

    from peers.plan import kind

    problems = []
    messages = broker.client.hvals("dramatiq:default.XQ.msgs")
    found = sorted(json.loads(m)["args"][0] for m in messages)
    if len(found) != dead or any(kind(i) != "poison" for i in found):
        problems.append(f"dead-letter queue holds {len(found)} messages, not the {dead} poison")
    if broker.client.llen("dramatiq:default") or broker.client.llen("dramatiq:default.DQ"):
        problems.append("messages still queued")
    return problems


def reset() -> None:
    broker.client.flushall()


def worker_command(python: str) -> tuple[list[str], int]:
    """The worker command and how many processes run handlers."""
    return [python, "-m", "dramatiq", "peers.dramatiq_app", "--processes", "2", "--threads", "8"], 2


WORKER_ENV = {"dramatiq_worker_timeout": "100"}
