"""The transactional outbox: "event written" becomes part of the application's transaction.

The application adds an event with its own connection, inside its own transaction
(``outbox.add(conn, topic, payload, ...)``): if the business transaction rolls back, the
event is gone too. A dispatcher (``Outbox.run()`` or ``redrive outbox run``) claims pending
rows in batches and hands each event to an ``EventBus`` (whose failures become dead
letters, retried per handler) or to a publisher callable (a broker). A delivery that fails
is retried by the topic's policy; after ``max_attempts`` the row is marked ``dead`` *and*
a dead letter with the full error context is recorded, so it shows in ``redrive list``.

Delivery is at least once. On PostgreSQL a batch is delivered while the transaction that
locked its rows (``FOR UPDATE SKIP LOCKED``) stays open, and its outcomes are written in
that transaction: a dispatcher that dies mid-batch loses its connection and the rows are
free at once. A batch slower than ``hold`` (and every batch on SQLite) is protected by a
lease instead: a dispatcher that dies leaves it to expire, then the rows are delivered again.

.. versionadded:: 0.1
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from redrive._clock import Clock, SystemClock
from redrive._ids import owner_id
from redrive.core.presence import Presence
from redrive.exceptions import ConfigError, StoreError
from redrive.models import JSON, Event
from redrive.outbox.add import insert
from redrive.outbox.dead import dead_letter, failure_text
from redrive.outbox.eager import gather_eagerly
from redrive.outbox.model import (
    Batch,
    OutboxBackend,
    OutboxEvent,
    OutboxPage,
    Outcome,
)
from redrive.outbox.repository import OutboxRepository
from redrive.policy import RetryPolicy
from redrive.stores.base import Store

if TYPE_CHECKING:
    from redrive.bus import EventBus
    from redrive.config import Settings

__all__ = ["Outbox", "OutboxEvent", "OutboxPage", "Publisher"]

logger = logging.getLogger("redrive.outbox")

Publisher = Callable[[Event], Awaitable[Any] | Any]
"""Sends one event somewhere (a broker); raising means the delivery failed."""
Delivered = tuple[Outcome, BaseException | None]
"""What one delivery did, and the error when it failed."""


BACKENDS = {
    "sqlite": "redrive.outbox.sqlite:SqliteOutbox",
    "postgresql": "redrive.outbox.postgres:PgOutbox",
}
"""The outbox SQL for each kind of store (``Store.kind``): the one place to add a backend."""


def backend_for(store: Store) -> OutboxBackend:
    """The outbox SQL for the database behind ``store``, by the kind the store says it is."""
    location = BACKENDS.get(getattr(store, "kind", ""))
    if location is None:
        raise ConfigError(f"the outbox needs a PostgreSQL or SQLite store, not {store.url}")
    module, _, name = location.partition(":")
    backend: OutboxBackend = getattr(importlib.import_module(module), name)(store)
    return backend


class Outbox(OutboxRepository):
    """A transactional outbox in the store's database, and its dispatcher.

    :param store: the store (the outbox table lives in the same database).
    :param bus: deliver events to this bus's handlers (their failures become dead letters).
    :param publisher: or deliver them with this callable (sync or async).
    :param name: the handler name on dead letters of failed deliveries.
    :param policy: retries of failed deliveries when the settings name none for the topic.
    :param ordering: ``"key"``: events of one key are delivered in order, and a failing
        event holds back the later events of its key until it succeeds or goes dead.
    :param lease: how long a claimed row is held before another dispatcher may take it.
    :param hold: PostgreSQL: how long a batch may keep its rows locked by its open
        transaction; rows still being delivered then are leased and the transaction
        commits. Default 10 seconds (at most half the lease); shorter than ``lease``.
        ``timedelta(0)``: always lease (one more write per row).

    .. versionchanged:: 0.1 ``hold``: locked batches on PostgreSQL.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        store: Store,
        *,
        bus: EventBus | None = None,
        publisher: Publisher | None = None,
        name: str | None = None,
        settings: Settings | None = None,
        policy: RetryPolicy | None = None,
        batch_size: int = 100,
        ordering: Literal["none", "key"] = "none",
        lease: timedelta = timedelta(minutes=5),
        hold: timedelta | None = None,
        poll_interval: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        if bus is not None and publisher is not None:
            raise ConfigError("give the outbox a bus or a publisher, not both")
        if ordering not in ("none", "key"):
            raise ConfigError(f"ordering must be 'none' or 'key', got {ordering!r}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if hold is None:
            hold = min(timedelta(seconds=10), lease / 2)
        elif hold >= lease:
            raise ConfigError(f"hold ({hold}) must be shorter than the lease ({lease})")
        from redrive.config import Settings

        self.store = store
        self.bus = bus
        self.publisher = publisher
        self.name = name or (_callable_name(publisher) if publisher else "redrive.outbox")
        self.settings = settings or (bus.settings if bus is not None else Settings())
        self.policy = policy
        self.batch_size = batch_size
        self.ordering = ordering
        self.lease = lease
        self.hold = hold
        self.poll_interval = poll_interval
        self.clock = clock or SystemClock()
        self.owner = owner_id()
        host = socket.gethostname()
        self.consumer: dict[str, JSON] = {
            "service": "redrive-outbox",
            "host": host,
            "pid": os.getpid(),
        }
        self._backend = backend_for(store)
        self._async_publisher = publisher is not None and _is_async(publisher)
        self._wake = asyncio.Event()
        self._stopping = False

    # -- the application's side --------------------------------------------------------
    def add(
        self,
        conn: Any,
        topic: str,
        payload: JSON = None,
        *,
        aggregate_type: str | None = None,
        aggregate_id: str | int | None = None,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        correlation_id: str | None = None,
        tenant_id: str | None = None,
        max_attempts: int | None = None,
    ) -> str:
        """Add an event inside the caller's transaction on ``conn``; return the event id.

        ``conn`` is the application's own psycopg connection (or cursor), SQLAlchemy
        session or connection, or sqlite3 connection: nothing is committed here.
        """
        return insert(
            conn,
            self._backend,
            topic=topic,
            payload=payload,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            key=key,
            headers=headers,
            correlation_id=correlation_id,
            tenant_id=tenant_id,
            max_attempts=max_attempts,
            now=self.clock.now(),
        )

    # -- dispatching --------------------------------------------------------------------
    async def dispatch(self) -> int:
        """Claim one batch of due rows, deliver them, record the outcomes; return how many."""
        if self.bus is None and self.publisher is None:
            raise ConfigError("this outbox has no bus and no publisher to deliver to")
        if self._backend.locks_rows and self.hold > timedelta(0):
            return await self._dispatch_locked()
        now = self.clock.now()
        rows = await asyncio.to_thread(
            self._backend.claim,
            now=now,
            lease_until=now + self.lease,
            owner=self.owner,
            limit=self.batch_size,
            by_key=self.ordering == "key",
        )
        if not rows:
            return 0
        results: dict[int, Delivered] = {}
        await self._deliver_all(rows, results)
        await self._finish_leased(rows, results)
        return len(rows)

    async def _dispatch_locked(self) -> int:
        """Deliver a batch inside the transaction that locked it, and write its outcomes
        there; after ``hold``, lease the rows still in flight and commit what is known."""
        locking = asyncio.ensure_future(
            asyncio.to_thread(
                self._backend.lock,
                now=self.clock.now(),
                limit=self.batch_size,
                by_key=self.ordering == "key",
                stuck_after=self.lease,
            )
        )
        try:
            batch = await asyncio.shield(locking)
        except asyncio.CancelledError:
            locking.add_done_callback(_release_unused)  # do not leave the rows locked
            raise
        if batch is None:
            return 0
        results: dict[int, Delivered] = {}
        delivery = asyncio.ensure_future(self._deliver_all(batch.rows, results))
        try:
            await asyncio.wait((delivery,), timeout=self.hold.total_seconds())
            finished = dict(results)  # what completes from here on belongs to the lease
            outcomes = await self._record_dead(batch.rows, list(finished.values()))
        except BaseException:
            delivery.cancel()
            batch.release()  # nothing written: the rows are free for any dispatcher
            raise
        late = [row for row in batch.rows if row.id not in finished]
        now = self.clock.now()
        try:
            await asyncio.to_thread(
                batch.commit,
                [o for o, _ in outcomes],
                now=now,
                leased=[r.id for r in late],
                lease_until=now + self.lease,
                owner=self.owner,
            )
        except BaseException:
            delivery.cancel()  # the server released the rows: they are delivered again
            raise
        if late:
            await delivery
            await self._finish_leased(late, results)
        return len(batch.rows)

    async def _finish_leased(self, rows: list[OutboxEvent], results: dict[int, Delivered]) -> None:
        outcomes = await self._record_dead(rows, [results[row.id] for row in rows])
        await asyncio.to_thread(
            self._backend.finish, [o for o, _ in outcomes], now=self.clock.now(), owner=self.owner
        )

    async def run(self, *, stop: asyncio.Event | None = None) -> None:
        """Dispatch until ``stop`` is set (or :meth:`stop` is called).

        Sleeps between batches until the next row is due, a NOTIFY from an insert
        (PostgreSQL), or ``poll_interval``, whichever is first.
        """
        self._stopping = False
        loop = asyncio.get_running_loop()
        unlisten = await asyncio.to_thread(
            self._backend.listen, lambda: loop.call_soon_threadsafe(self._wake.set)
        )
        watcher = asyncio.create_task(self._watch(stop)) if stop is not None else None
        presence = self._presence()
        presence.start()
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    began = self.clock.now()
                    handled = await self.dispatch()
                    presence.claimed(handled)
                    presence.ran(handled)
                    if handled >= self.batch_size:
                        continue  # a full batch: more may be waiting
                    wait = await self._next_wait(began)
                except StoreError as exc:
                    logger.warning("outbox dispatch failed: %s", exc)
                    wait = self.poll_interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
        finally:
            if watcher is not None:
                watcher.cancel()
            await presence.stop()
            await asyncio.to_thread(unlisten)

    def _presence(self) -> Presence:
        """This dispatcher's heartbeat in the store (``redrive workers`` lists it)."""
        return Presence(
            self.store, self.clock, self.owner, lambda: [f"outbox/{self.name}"], kind="outbox"
        )

    def stop(self) -> None:
        """Make :meth:`run` return after the batch in flight."""
        self._stopping = True
        self._wake.set()

    async def _watch(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.stop()

    async def _next_wait(self, began: datetime) -> float:
        """Seconds until the next row is due, at most ``poll_interval``.

        A row that was already due when the batch began and was not in it is held by
        another dispatcher's batch (or by its key's order): waiting for it would spin,
        so wait for a NOTIFY or the poll instead.
        """
        due = await asyncio.to_thread(self._backend.next_due_at)
        if due is None or due <= began:
            return self.poll_interval
        return max(0.0, min(self.poll_interval, (due - self.clock.now()).total_seconds()))

    async def _deliver_all(self, rows: list[OutboxEvent], results: dict[int, Delivered]) -> None:
        """Deliver ``rows`` concurrently; each outcome lands in ``results`` as it is known."""
        await gather_eagerly([self._deliver(row, results) for row in rows])

    async def _deliver(self, row: OutboxEvent, results: dict[int, Delivered]) -> None:
        event = row.to_event()
        try:
            if self.bus is not None:
                # The bus records each handler's failure as a dead letter and retries it
                # per handler: the row is delivered once the bus has the event.
                await self.bus.dispatch(event, origin={"outbox_id": row.id})
            elif self._async_publisher:
                await self.publisher(event)  # type: ignore[misc]
            else:
                await asyncio.to_thread(self.publisher, event)  # type: ignore[arg-type]
        except Exception as error:
            results[row.id] = (self._failed(row, error), error)
        else:
            results[row.id] = (Outcome(id=row.id, attempts=row.attempts + 1), None)

    def _failed(self, row: OutboxEvent, error: Exception) -> Outcome:
        policy = self.policy_for(row)
        attempt = row.attempts + 1
        decision = policy.decide(attempt, error, self.clock.now(), random.random)
        return Outcome(
            id=row.id,
            attempts=attempt,
            error=failure_text(error),
            retry_at=decision.retry_at,
            dead=decision.dead,
        )

    def policy_for(self, row: OutboxEvent) -> RetryPolicy:
        """The retry policy of a row: the topic's, with the row's own max_attempts."""
        policy = self.settings.policy_for(row.topic, self.name, None, fallback=self.policy)
        return policy.replace(max_attempts=row.max_attempts) if row.max_attempts else policy

    async def _record_dead(
        self, rows: list[OutboxEvent], outcomes: list[Delivered]
    ) -> list[Delivered]:
        """Write a dead letter for each row that goes dead, before the row is marked dead.

        If the store cannot take them, those rows stay pending and are tried again later:
        a row is never dead without its dead letter.
        """
        now = self.clock.now()
        by_id = {row.id: row for row in rows}
        records = [
            dead_letter(
                by_id[o.id],
                error,
                o.attempts,
                self.policy_for(by_id[o.id]),
                name=self.name,
                consumer=self.consumer,
                now=now,
            )
            for o, error in outcomes
            if o.dead and error is not None
        ]
        if not records:
            return outcomes
        try:
            await asyncio.to_thread(self.store.add, records)
        except StoreError as exc:
            logger.warning("cannot record %d dead outbox events yet: %s", len(records), exc)
            later = now + timedelta(seconds=self.poll_interval)
            return [
                (Outcome(id=o.id, attempts=o.attempts - 1, error=o.error, retry_at=later), e)
                if o.dead
                else (o, e)
                for o, e in outcomes
            ]
        return outcomes

    def close(self) -> None:
        """Stop listening and release the outbox's own connections (not the store's)."""
        self._backend.close()


def _release_unused(locking: asyncio.Future[Batch | None]) -> None:
    """Roll back a batch locked for a dispatch that was cancelled meanwhile."""
    if not locking.cancelled() and locking.exception() is None:
        batch = locking.result()
        if batch is not None:
            batch.release()


def _is_async(fn: Callable[..., Any]) -> bool:
    call = fn if inspect.isroutine(fn) else type(fn).__call__
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)


def _callable_name(fn: Any) -> str:
    from redrive.core.engine import handler_name

    return handler_name(fn)
