"""Worker liveness: every scheduler (an app's, ``redrive worker``'s, the outbox
dispatcher's) writes a heartbeat to the store's meta table (namespace ``workers``), so
operators can tell whether anything is consuming: host, pid, version, handlers, the last
claim, how many records it ran, since when. A clean stop deletes the entry; a crashed
process's entry goes stale and stops counting as live.

``stalled`` finds the scheduled records that are overdue with no live worker for their
handler (the console flags them, ``/metrics`` counts them, the ``stalled`` alert rule
fires on them).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from redrive._clock import Clock
from redrive.models import JSON, Status, format_time, parse_time
from redrive.stores.base import Filter, Store

logger = logging.getLogger("redrive.presence")

NAMESPACE = "workers"
INTERVAL = 15.0
"""Seconds between two heartbeats of a scheduler."""
LIVE_FOR = timedelta(seconds=3 * INTERVAL)
"""A worker whose last heartbeat is older than this is not live (it crashed, or hangs)."""


class Presence:
    """One scheduler's heartbeat in the store.

    :param kind: ``app`` (an EventBus in an application), ``worker`` (``redrive
        worker``) or ``outbox`` (the outbox dispatcher).
    :param handlers: the ``topic/handler`` names it runs, read at each beat.

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        owner: str,
        handlers: Callable[[], Iterable[str]],
        *,
        kind: str = "app",
        interval: float = INTERVAL,
    ) -> None:
        self.store, self.clock, self.owner = store, clock, owner
        self.kind = kind
        self.version: str | None = None
        self._handlers = handlers
        self._interval = interval
        self.started_at = clock.now()
        self.last_claim_at: datetime | None = None
        self.records_run = 0
        self.outcomes: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def claimed(self, count: int) -> None:
        """Note a claim of ``count`` records (nothing when the claim found none)."""
        if count:
            self.last_claim_at = self.clock.now()

    def ran(self, count: int = 1) -> None:
        """Note records run to an outcome."""
        self.records_run += count

    def finished(self, task: asyncio.Task[Any]) -> None:
        """Note one record run by the scheduler's task, and its outcome (a record's
        status: resolved, dead, or scheduled for another retry)."""
        self.records_run += 1
        if task.cancelled() or task.exception() is not None:
            return
        record = task.result()
        status = getattr(getattr(record, "status", None), "value", None)
        if status:
            self.outcomes[status] = self.outcomes.get(status, 0) + 1

    def summary(self) -> str:
        """``ran 8: 8 resolved, 0 dead, 0 to retry`` (what ``redrive worker`` prints)."""
        o = self.outcomes
        return (
            f"ran {self.records_run:,}: {o.get('resolved', 0):,} resolved, "
            f"{o.get('dead', 0):,} dead, {o.get('scheduled', 0):,} to retry"
        )

    def value(self) -> dict[str, JSON]:
        """What the store keeps about this scheduler."""
        import redrive

        return {
            "kind": self.kind,
            "owner": self.owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "redrive": redrive.__version__,
            "version": self.version,
            "handlers": sorted(self._handlers()),
            "started_at": format_time(self.started_at),
            "last_claim_at": format_time(self.last_claim_at),
            "records_run": self.records_run,
            "beat_at": format_time(self.clock.now()),
        }

    def beat(self) -> None:
        """Write the heartbeat now (a store error is logged; the next beat tries again)."""
        try:
            self.store.meta_put(NAMESPACE, self.owner, self.value())
        except Exception as exc:  # liveness is advisory: never stop a scheduler for it
            logger.warning("could not write the worker heartbeat: %s", type(exc).__name__)

    def start(self) -> None:
        """Beat every ``interval`` in a task of the running loop."""
        if self._task is None:
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(self._loop(), name="redrive-presence")

    async def stop(self) -> None:
        """Stop beating and delete the entry (a clean stop is not a dead worker)."""
        if self._task is not None:
            # Not cancel(): a beat already in its thread would go on writing while the
            # store closes (a SQLite connection used while it is closed crashes the process).
            self._stop.set()
            await self._task
            self._task = None
        try:
            await asyncio.to_thread(self.store.meta_delete, NAMESPACE, self.owner)
        except Exception as exc:  # the entry goes stale instead
            logger.warning("could not remove the worker heartbeat: %s", type(exc).__name__)

    async def _loop(self) -> None:
        while not self._stop.is_set():
            await asyncio.to_thread(self.beat)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval)


def workers(store: Store, now: datetime) -> list[dict[str, Any]]:
    """Every scheduler that wrote a heartbeat, with ``live`` (beat within ``LIVE_FOR``),
    newest first; entries stale for over a day are dropped from the store."""
    found = []
    for owner, value in store.meta_list(NAMESPACE).items():
        if not isinstance(value, dict):
            continue
        beat = parse_time(value.get("beat_at"))
        if beat is None or now - beat > timedelta(days=1):
            store.meta_delete(NAMESPACE, owner)
            continue
        found.append({**value, "live": now - beat <= LIVE_FOR})
    return sorted(found, key=lambda w: str(w.get("beat_at")), reverse=True)


def live_handlers(listed: Iterable[dict[str, Any]]) -> set[str]:
    """The ``topic/handler`` names some live worker runs."""
    names: set[str] = set()
    for worker in listed:
        if worker.get("live"):
            names.update(str(name) for name in worker.get("handlers") or ())
    return names


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Stalled:
    """Scheduled records of one handler, overdue, that no live worker runs."""

    topic: str
    handler: str
    count: int
    oldest_due_at: datetime


def stalled(store: Store, now: datetime, *, older_than: timedelta) -> list[Stalled]:
    """Handlers whose scheduled records are due for longer than ``older_than`` while no
    live worker runs them (nothing will run them until one starts)."""
    running = live_handlers(workers(store, now))
    pairs: dict[tuple[str, str], int] = {}
    for group in store.groups(Filter(statuses=(Status.SCHEDULED,)), limit=10_000):
        key = (group.topic, group.handler)
        pairs[key] = pairs.get(key, 0) + group.count
    found = []
    for (topic, handler), count in sorted(pairs.items()):
        if f"{topic}/{handler}" in running:
            continue
        due = store.next_due_at([(topic, handler)])
        if due is not None and now - due >= older_than:
            found.append(Stalled(topic=topic, handler=handler, count=count, oldest_due_at=due))
    return found
