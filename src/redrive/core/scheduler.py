"""The scheduler: claims due records under a lease and runs them through the engine.

It serves automatic retries and operator replays alike (a replay is a record scheduled
for now). A claim moves records to ``retrying`` with a lease, which a heartbeat extends
while the attempt runs, however long it takes; a worker that dies stops beating, its
leases expire, and the records are claimed again (at-least-once). The scheduler sleeps
until the earliest due record, a wake-up, or ``poll_interval``, whichever is first.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from redrive._clock import Clock, SystemClock
from redrive._ids import owner_id
from redrive.core.engine import Engine, HandlerSpec
from redrive.core.presence import Presence
from redrive.core.writer import Claim
from redrive.models import DeadLetter
from redrive.stores.base import Listener, Store

logger = logging.getLogger("redrive.scheduler")

HandlerKey = tuple[str, str]  # (topic, handler name)


class Scheduler:
    """Runs due records for the handlers it knows.

    :param handlers: returns the specs by (topic, handler name); read at each claim.
    :param concurrency: records run at once.
    :param lease: how long a claim holds without a heartbeat: the time after which the
        records of a worker that died are run elsewhere. The heartbeat renews it every
        third of ``lease`` while an attempt runs.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        store: Store,
        engine: Engine,
        handlers: Callable[[], Mapping[HandlerKey, HandlerSpec]],
        *,
        clock: Clock | None = None,
        poll_interval: float = 1.0,
        batch_size: int = 100,
        concurrency: int = 50,
        lease: timedelta = timedelta(minutes=1),
    ) -> None:
        self.store = store
        self.engine = engine
        self.clock = clock or SystemClock()
        self.owner = owner_id()
        self._handlers = handlers
        self._poll = poll_interval
        self._batch = batch_size
        self._concurrency = concurrency
        self._lease = lease
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[DeadLetter | None]] = set()
        self._held: dict[str, str] = {}  # id -> claim token of the attempts running here
        self._claims = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._beat_now = asyncio.Event()
        self._stopping = False
        self._unlisten: Callable[[], None] | None = None
        self.presence = Presence(store, self.clock, self.owner, self._handler_names)

    # -- control -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the loop in the running event loop.

        If the store can tell when another process schedules work (PostgreSQL's
        LISTEN/NOTIFY), the scheduler wakes at once instead of at its next poll.
        """
        if self._task is None:
            self._stopping = False
            if isinstance(self.store, Listener):
                loop = asyncio.get_running_loop()

                def wake() -> None:  # from the store's thread
                    loop.call_soon_threadsafe(self._wake.set)

                self._unlisten = self.store.listen(wake)
            self._task = asyncio.create_task(self._loop(), name="redrive-scheduler")
            self._heartbeat = asyncio.create_task(self._beat(), name="redrive-heartbeat")
            self.presence.start()

    async def stop(self) -> None:
        """Stop claiming, and wait for the records in flight to finish."""
        self._stopping = True
        self._wake.set()
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self._task is not None:
            await self._task
            self._task = None
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        await self.presence.stop()

    def wake(self) -> None:
        """Look for due records now (something was just scheduled)."""
        self._wake.set()

    # -- work --------------------------------------------------------------------------
    async def run_once(self) -> int:
        """Claim one batch of due records and run them to the end; return how many."""
        claimed = await self._claim(self._batch)
        self.presence.claimed(len(claimed))
        await asyncio.gather(*(self._run(record) for record in claimed))
        self.presence.ran(len(claimed))
        return len(claimed)

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                free = self._concurrency - len(self._running)
                if free <= 0:  # every slot busy: wait for one to free up, do not poll
                    await self._sleep(self._poll)
                    continue
                claimed = await self._claim(min(self._batch, free))
                self.presence.claimed(len(claimed))
                for record in claimed:
                    task = asyncio.create_task(self._run(record))
                    self._running.add(task)
                    task.add_done_callback(self._done)
                if claimed and len(claimed) == min(self._batch, free):
                    continue  # more may be due: claim again at once
                await self._sleep(await self._next_wait())
            except Exception:
                logger.exception("scheduler loop failed; retrying in %.1fs", self._poll)
                await self._sleep(self._poll)

    def _done(self, task: asyncio.Task[DeadLetter | None]) -> None:
        self._running.discard(task)
        self.presence.finished(task)
        self._wake.set()

    def _handler_names(self) -> list[str]:
        """``topic/handler`` for each handler this scheduler runs (for its heartbeat)."""
        return [f"{topic}/{name}" for topic, name in self._handlers()]

    async def _claim(self, limit: int) -> list[DeadLetter]:
        """Claim due records under a token of this claim's own (``owner/n``): the fencing
        token the save and the heartbeat must match, so a run whose lease lapsed can never
        overwrite the outcome of a later claim. Records running here are never claimed."""
        handlers = self._handlers()
        if limit <= 0 or not handlers:
            return []
        token = f"{self.owner}/{next(self._claims)}"
        # Through the engine's writer: the claim commits with the failures and outcomes
        # pending beside it (one transaction on SQLite), and reads the time when it runs.
        claimed = await self.engine.writer.claim(
            Claim(
                owner=token,
                limit=limit,
                lease=self._lease,
                clock=self.clock,
                handlers=list(handlers),
                exclude=list(self._held),
            )
        )
        now = self.clock.now()
        for record in claimed:  # held from the claim on: the heartbeat renews it at once
            self._held[record.id] = record.lease_owner or token
        short = self._lease.total_seconds() * 2 / 3  # renewed at once below two thirds left
        if any(
            r.lease_expires_at and _seconds_until(r.lease_expires_at, now) < short for r in claimed
        ):
            self._beat_now.set()  # the claim took long (an outage): renew now, not in a third
        return claimed

    async def _beat(self) -> None:
        """Extend the leases of the attempts running here, every third of the lease
        (start to start), and at once after a claim that left a lease short. An extension
        slower than that (the store was down) is followed by another at once: its lease was
        computed when it started, the next one is computed now that the store answers."""
        interval = self._lease.total_seconds() / 3
        loop = asyncio.get_running_loop()
        # Its own thread: busy handler or store threads must never delay a heartbeat.
        with ThreadPoolExecutor(1, thread_name_prefix="redrive-heartbeat") as thread:
            wait = interval
            while True:
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._beat_now.wait(), wait)
                self._beat_now.clear()
                began = loop.time()
                if self._held:
                    await self._extend(loop, thread)
                wait = interval - (loop.time() - began)

    async def _extend(self, loop: asyncio.AbstractEventLoop, thread: ThreadPoolExecutor) -> None:
        by_token: dict[str, list[str]] = {}
        for record_id, token in self._held.items():
            by_token.setdefault(token, []).append(record_id)

        def extend() -> None:
            for token, ids in by_token.items():
                until = self.clock.now() + self._lease
                self.store.extend_leases(ids, owner=token, until=until)

        try:
            await loop.run_in_executor(thread, extend)
        except Exception:  # the next beat tries again; the lease has two more thirds
            logger.exception("could not extend %d leases", len(self._held))

    async def _run(self, record: DeadLetter) -> DeadLetter | None:
        spec = self._handlers().get((record.topic, record.handler))
        token = self._held.get(record.id, record.lease_owner or self.owner)
        try:
            if spec is None:  # unsubscribed since the claim: the lease lapses for another
                return None
            return await self.engine.retry(record, spec, owner=token)
        except Exception:
            logger.exception("could not save the outcome of %s; its lease will expire", record.id)
            return None
        finally:
            self._held.pop(record.id, None)

    async def _next_wait(self) -> float:
        due = await asyncio.to_thread(self.store.next_due_at, list(self._handlers().keys()))
        if due is None:
            return self._poll
        return max(0.0, min(self._poll, _seconds_until(due, self.clock.now())))

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0 and not self._wake.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()


def _seconds_until(when: datetime, now: datetime) -> float:
    return (when - now).total_seconds()
