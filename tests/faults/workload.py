"""The workload of the fault suite: a child process the fault runner starts and kills.

Usage: ``python -m tests.faults.workload ROLE STORE_URL LOG_DIR SEED [FIRST COUNT]``
(``REDRIVE_FAULT_LEASE``: the lease of workers and dispatchers in seconds, default 2).

Roles:
- ``publish``: publish events ``FIRST .. FIRST+COUNT-1`` through an ``EventBus`` (which
  also runs its scheduler), logging each event whose ``publish()`` returned;
- ``outbox-add``: add the same events to the outbox, one committed transaction each,
  logging each event whose commit returned;
- ``worker``: run the bus's scheduler (retries) until SIGTERM or SIGKILL;
- ``dispatcher``: run the outbox dispatcher into a bus (and its scheduler);
- ``nats-publish``, ``nats-consume``, ``kafka-publish``, ``kafka-consume``: the same
  events through a JetStream stream or a Kafka topic (:mod:`tests.faults.brokers`).

Every event has two handlers, ``a`` and ``b``; what each does is drawn from the seed and
the event's number (:func:`kinds`): ``ok`` succeeds, ``transient`` fails its first run and
succeeds on any later one (a marker file remembers the first run across processes),
``poison`` always fails and goes dead once its attempts are spent, ``slow`` is a
transient whose retry takes longer than the lease (only heartbeats keep it from being
claimed again). Logs, one file per
process (a process killed mid-line leaves at most one partial last line):
``published-<pid>.log`` (``P event_id n kind_a kind_b``), ``hooks-<pid>.log`` (the
outcomes the store accepted: ``S``/``F``/``D``, see :class:`LogHook`),
``runs-<pid>.log`` (``R event_id handler``: each handler run), ``err-<pid>.log`` (the
library's warnings, where a refused save says "lease on ... was lost").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import sqlite3
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import IO

from redrive import Event, EventBus, Hook, RetryPolicy, open_store
from redrive.exceptions import StoreError
from redrive.models import DeadLetter
from redrive.outbox import Outbox
from redrive.stores.base import Store

TOPIC = "orders"
HANDLERS = ("a", "b")
KINDS = ("ok", "transient", "poison", "slow")
WEIGHTS = (5, 3, 2, 1)
LEASE = timedelta(seconds=float(os.environ.get("REDRIVE_FAULT_LEASE", "2")))
SLOW = LEASE * 1.25  # how long the retry of a "slow" event takes: longer than its lease
POLICY = RetryPolicy(
    max_attempts=4,
    initial_delay=0.05,
    max_delay=0.2,
    retry_on=(ConnectionError, LookupError),
)
OUTBOX_POLICY = RetryPolicy(max_attempts=50, initial_delay=0.1, max_delay=0.5)


def kinds(seed: int, n: int) -> tuple[str, str]:
    """What handlers ``a`` and ``b`` do for event ``n`` of the run with ``seed``."""
    rng = random.Random(f"{seed}:{n}")
    a, b = rng.choices(KINDS, WEIGHTS, k=2)
    return a, b


def line_log(path: Path) -> IO[str]:
    return open(path, "a", buffering=1)  # line-buffered: one write(2) per line


class LogHook(Hook):
    """Logs each outcome the store accepted, so the runner can count runs per schedule.

    ``S event handler record_id attempts via`` (``record_id`` is ``-`` on a first attempt),
    ``F event handler record_id attempts status via``, ``D event handler record_id attempts
    via``; ``via`` is ``claim`` for the outcome of a scheduler's claim (a retry) and
    ``first`` for a delivery's own attempts (a bus's publish, a broker's (re)delivery).
    """

    def __init__(self, log: IO[str]) -> None:
        self.log = log

    def on_success(
        self, event: Event, handler: str, duration: float, record: DeadLetter | None
    ) -> None:
        rid, attempts = (record.id, record.attempts) if record else ("-", 0)
        self.log.write(f"S {event.id} {handler} {rid} {attempts} {_via()}\n")

    def on_failure(self, record: DeadLetter, error: BaseException, duration: float) -> None:
        self.log.write(
            f"F {record.event.id} {record.handler} {record.id} {record.attempts} "
            f"{record.status.value} {_via()}\n"
        )

    def on_dead(self, record: DeadLetter) -> None:
        self.log.write(
            f"D {record.event.id} {record.handler} {record.id} {record.attempts} {_via()}\n"
        )


def _via() -> str:
    """``claim`` inside a scheduler's run of a claimed record, else ``first``: the task
    calling the hook tells (hooks are called in the task that ran the attempt)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop: not a scheduler
        return "first"
    name = getattr(task.get_coro(), "__qualname__", "") if task else ""
    return "claim" if name == "Scheduler._run" else "first"


def make_bus(store: Store, logs: Path) -> EventBus:
    """A bus with the two handlers of the workload and the logging hook."""
    bus = EventBus(
        store,
        hooks=[log_hook(logs)],
        poll_interval=0.1,
        concurrency=8,
        lease=LEASE,
        service="faults",
    )
    subscribe_handlers(bus, logs, TOPIC)
    return bus


def log_hook(logs: Path) -> LogHook:
    """This process's :class:`LogHook`, writing ``hooks-<pid>.log``."""
    return LogHook(line_log(logs / f"hooks-{os.getpid()}.log"))


def subscribe_handlers(bus: EventBus, logs: Path, topic: str) -> None:
    """Subscribe the workload's handlers ``a`` and ``b`` to ``topic`` (a bus's topic, a
    NATS subject, a Kafka topic), logging each run to ``runs-<pid>.log``."""
    runs = line_log(logs / f"runs-{os.getpid()}.log")
    marks = logs / "marks"
    marks.mkdir(exist_ok=True)

    def behaviour(name: str) -> None:
        def handle(event: Event) -> None:
            runs.write(f"R {event.id} {name}\n")
            assert isinstance(event.payload, dict)
            kind = event.payload[name]
            if kind in ("transient", "slow"):
                try:  # the first run anywhere creates the marker and fails
                    os.close(os.open(marks / f"{_safe(event.id)}.{name}", os.O_CREAT | os.O_EXCL))
                except FileExistsError:
                    if kind == "slow":  # a retry longer than the lease: heartbeats must hold it
                        time.sleep(SLOW.total_seconds())
                    return
                raise ConnectionError(f"downstream unavailable for {event.payload['n']}")
            if kind == "poison":
                raise LookupError(f"no such order {event.payload['n']} (poison)")

        bus.subscribe(topic, handle, name=name, policy=POLICY)

    for name in HANDLERS:
        behaviour(name)


def _safe(event_id: str) -> str:
    """An event id as a file name (a NATS or Kafka event id holds ``:`` and ``.``)."""
    return event_id.replace("/", "_")


def payload(seed: int, n: int) -> dict[str, object]:
    a, b = kinds(seed, n)
    return {"n": n, "a": a, "b": b}


async def publish(url: str, logs: Path, seed: int, first: int, count: int) -> None:
    store = open_store(url)
    bus = make_bus(store, logs)
    out = line_log(logs / f"published-{os.getpid()}.log")
    async with bus:
        print("ready", flush=True)
        for n in range(first, first + count):
            body = payload(seed, n)
            for attempt in range(100):
                try:
                    event = await bus.publish(TOPIC, body)
                    break
                except StoreError:  # the server restarts: this event is not promised; again
                    if attempt == 99:
                        raise
            out.write(f"P {event.id} {n} {body['a']} {body['b']}\n")
        print("published", flush=True)
        await until_term()


def outbox_add(url: str, logs: Path, seed: int, first: int, count: int) -> None:
    store = open_store(url)
    outbox = Outbox(store)
    out = line_log(logs / f"published-{os.getpid()}.log")
    print("ready", flush=True)
    if url.startswith("sqlite"):
        conn: object = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)
    else:
        import psycopg

        conn = psycopg.connect(url)
    for n in range(first, first + count):
        body = payload(seed, n)
        for attempt in range(200):  # a PostgreSQL restart: reconnect and add it again
            try:
                event_id = outbox.add(conn, TOPIC, body)
                conn.commit()  # type: ignore[attr-defined]
                break
            except Exception:
                if attempt == 199:
                    raise
                with contextlib.suppress(Exception):  # nothing half-added stays pending
                    conn.rollback()  # type: ignore[attr-defined]
                _reconnect_wait()
                if not url.startswith("sqlite"):
                    import psycopg

                    try:
                        conn = psycopg.connect(url)
                    except psycopg.OperationalError:
                        continue
        out.write(f"P {event_id} {n} {body['a']} {body['b']}\n")
    print("published", flush=True)


def _reconnect_wait() -> None:
    time.sleep(0.1)  # back-off before reconnecting to a restarting server, not a sync


async def work(url: str, logs: Path) -> None:
    async with make_bus(open_store(url), logs):
        print("ready", flush=True)
        await until_term()


async def dispatch(url: str, logs: Path) -> None:
    store = open_store(url)
    bus = make_bus(store, logs)
    outbox = Outbox(
        store, bus=bus, lease=LEASE, poll_interval=0.1, batch_size=20, policy=OUTBOX_POLICY
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with bus:
        print("ready", flush=True)
        await outbox.run(stop=stop)


async def until_term() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


def main(argv: list[str]) -> None:
    role, url, log_dir, seed = argv[0], argv[1], Path(argv[2]), int(argv[3])
    logging.basicConfig(
        filename=log_dir / f"err-{os.getpid()}.log",
        level=logging.WARNING,
        format="%(levelname)s %(name)s %(message)s",
    )
    if role == "publish":
        asyncio.run(publish(url, log_dir, seed, int(argv[4]), int(argv[5])))
    elif role == "outbox-add":
        outbox_add(url, log_dir, seed, int(argv[4]), int(argv[5]))
    elif role == "worker":
        asyncio.run(work(url, log_dir))
    elif role == "dispatcher":
        asyncio.run(dispatch(url, log_dir))
    elif role.startswith(("nats-", "kafka-")):
        from tests.faults import brokers

        brokers.main(role, url, log_dir, seed, argv[4:])
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
