"""``JetStreamConsumer``: the handlers of an ``EventBus``, fed by a durable pull consumer.

What happens to a message (``attempt`` is its delivery count):

- every handler succeeded: ``ack``.
- every handler failed, each may retry, and each delay is at most ``broker_retry_max``:
  ``nak(delay)``; the broker redelivers it and every handler runs again.
- otherwise each failure becomes a store record (``scheduled`` for the store's scheduler,
  running in this process, or ``dead``), durable before anything else happens; a dead one
  is copied to the DLQ stream; then the message is terminated (if one died) or acked.
  Handlers that succeeded never run again.
- the store cannot take the record, or the DLQ copy fails: ``nak`` with
  ``store_retry_delay``, never an ack; the redelivery records it once (the store merges a
  failure into the open record of the same event and handler).

While handlers run, ``in_progress()`` every third of ``ack_wait`` keeps the delivery alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import NotFoundError

from redrive._clock import Clock
from redrive.bus import EventBus
from redrive.config import Settings
from redrive.core.engine import HandlerFn, HandlerSpec, Outcome
from redrive.exceptions import ConfigError
from redrive.hooks import Hook
from redrive.models import DeadLetter, Event, Status
from redrive.policy import Decision, RetryPolicy
from redrive.stores.base import Store
from redrive.transports.nats.advisory import AdvisoryReader
from redrive.transports.nats.connection import connect
from redrive.transports.nats.dlq import publish_copy
from redrive.transports.nats.eager import start_eagerly
from redrive.transports.nats.envelope import (
    UndecodableMessage,
    decode,
    delivery,
    event_of,
    origin_of,
    undecodable_payload,
)
from redrive.transports.nats.options import NatsOptions
from redrive.transports.nats.provision import provision

logger = logging.getLogger("redrive.nats")

F = TypeVar("F", bound=HandlerFn)

FETCH_TIMEOUT = 2.0
DEPTH_EVERY = 30.0
"""Seconds between reads of the DLQ stream's depth (``stats["dlq_depth"]``)."""


class JetStreamConsumer:
    """Runs handlers for the messages of one durable pull consumer.

    :param store: where failures are kept (``open_store(url)``).
    :param servers: NATS URL(s); default from ``[nats]`` in the settings.
    :param stream: the source stream.
    :param durable: the durable consumer, shared by every process of the service.
    :param options: all NATS options at once (the keyword arguments above override it).
    :param provision: on start, create or update the consumer, the DLQ stream and the
        advisory stream (what ``redrive nats provision`` does). Off: they must exist.
    :param policy, settings, hooks, service, version, clock, poll_interval, lease: as for
        ``EventBus`` (the consumer composes one: ``consumer.bus``).

    Handlers subscribe to subjects exactly as to an ``EventBus``'s topics.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        store: Store,
        *,
        servers: str | Sequence[str] | None = None,
        stream: str | None = None,
        durable: str | None = None,
        options: NatsOptions | None = None,
        provision: bool = True,
        policy: RetryPolicy | None = None,
        settings: Settings | None = None,
        hooks: Sequence[Hook] = (),
        service: str | None = None,
        version: str | None = None,
        clock: Clock | None = None,
        poll_interval: float = 1.0,
        lease: timedelta = timedelta(minutes=1),
        **overrides: Any,
    ) -> None:
        base = options or NatsOptions.from_settings(settings)
        if isinstance(servers, str):
            servers = (servers,)
        self.options = base.replace(
            servers=tuple(servers) if servers else None,
            stream=stream,
            durable=durable,
            **overrides,
        )
        if not self.options.stream or not self.options.durable:
            raise ConfigError(
                "a JetStream consumer needs a stream and a durable name", key="nats.stream"
            )
        self.bus = EventBus(
            store,
            policy=policy,
            settings=settings,
            hooks=hooks,
            service=service or self.options.durable,
            version=version,
            clock=clock,
            poll_interval=poll_interval,
            concurrency=self.options.concurrency,
            lease=lease,
        )
        self.store = store
        self._provision = provision
        self._nc: Any = None
        self._js: Any = None
        self._sub: Any = None
        self._fetcher: asyncio.Task[None] | None = None
        self._advisories: AdvisoryReader | None = None
        self._depth_task: asyncio.Task[None] | None = None
        self._beater: asyncio.Task[None] | None = None
        self._running: dict[int, tuple[Any, float]] = {}  # id(msg) -> (msg, start)
        self._loop_time: Callable[[], float] = lambda: 0.0
        self._inflight: set[asyncio.Task[None]] = set()
        self._slot = asyncio.Event()
        self._stopping = False
        self._counts = dict.fromkeys(
            (
                "processed",
                "acked",
                "retries",
                "scheduled",
                "dead",
                "dlq_published",
                "store_errors",
                "crash_loops",
                "skipped",
            ),
            0,
        )
        self._dlq_depth: int | None = None

    # -- registration (the bus's) -------------------------------------------------------
    def handler(
        self,
        subject: str,
        *,
        name: str | None = None,
        policy: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> Callable[[F], F]:
        """Decorator: run the function for messages of ``subject`` (see ``EventBus``)."""
        return self.bus.handler(subject, name=name, policy=policy, timeout=timeout)

    def subscribe(self, subject: str, fn: HandlerFn, **options: Any) -> HandlerSpec:
        """Run ``fn`` for messages of ``subject``; options as for ``EventBus.subscribe``."""
        return self.bus.subscribe(subject, fn, **options)

    def handlers(self, subject: str | None = None) -> list[HandlerSpec]:
        """The subscribed handlers, of one subject or of all."""
        return self.bus.handlers(subject)

    @property
    def stats(self) -> dict[str, Any]:
        """Counters since start: ``processed`` messages, ``retries`` (naks), ``scheduled``
        (store retries), ``dead``, ``dlq_published``, ``store_errors``, ``crash_loops``,
        ``in_flight`` now, whether the DLQ copy is on (``dlq_enabled``) and the DLQ stream's
        depth as last read (``dlq_depth``, every 30 s)."""
        return {
            **self._counts,
            "in_flight": len(self._inflight),
            "dlq_enabled": self.options.dlq.enabled,
            "dlq_depth": self._dlq_depth,
        }

    def max_attempts(self) -> int:
        """The most attempts any handler's policy allows (what max_deliver must exceed)."""
        specs = self.bus.handlers()
        if not specs:
            return self.bus.settings.policy_for("", "").max_attempts
        return max(spec.policy.max_attempts for spec in specs)

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Connect, provision (unless off), start the scheduler and the fetch loop."""
        self._stopping = False
        self._nc = await connect(self.options.servers, name=f"redrive:{self.options.durable}")
        try:
            self._js = self._nc.jetstream()
            await self._prepare()
            self._sub = await self._js.pull_subscribe_bind(
                durable=self.options.durable, stream=self.options.stream
            )
        except BaseException:
            await self._nc.close()
            raise
        self._retention = (await self._js.stream_info(self.options.stream)).config.retention
        await self.bus.start()
        if self.options.advisories.enabled:
            self._advisories = AdvisoryReader(
                self._js, self.options, self.bus, self.settle, self._crash_loop_caught
            )
            self._advisories.start()
        self._loop_time = asyncio.get_running_loop().time
        self._beater = asyncio.create_task(self._heartbeat(), name="redrive-nats-heartbeat")
        self._fetcher = asyncio.create_task(self._fetch_loop(), name="redrive-nats-fetch")
        if self.options.dlq.enabled:
            self._depth_task = asyncio.create_task(self._watch_depth(), name="redrive-nats-depth")

    async def _prepare(self) -> None:
        attempts = self.max_attempts()
        if self._provision:
            for change in await provision(self._js, self.options, max_attempts=attempts):
                if change.action != "unchanged":
                    logger.info("provisioned: %s", change.describe())
            return
        o = self.options
        info = await self._must_exist(self._js.consumer_info(o.stream, o.durable), "consumer")
        if o.dlq.enabled:
            await self._must_exist(self._js.stream_info(o.dlq.stream_for(o.stream)), "DLQ stream")
        if o.advisories.enabled:
            durable = o.advisories.durable_for(o.stream, o.durable)
            await self._must_exist(
                self._js.consumer_info(o.advisories.stream, durable), "advisory consumer"
            )
        limit = info.config.max_deliver
        if limit is None or limit < 0 or limit <= attempts:
            raise ConfigError(
                f"consumer {self.options.durable!r} has max_deliver {limit}, which must be "
                f"above the policies' {attempts} attempts: run `redrive nats provision`",
                key="nats.max_deliver",
            )

    def _crash_loop_caught(self) -> None:
        self._counts["crash_loops"] += 1

    async def _must_exist(self, lookup: Any, what: str) -> Any:
        try:
            return await lookup
        except NotFoundError:
            raise ConfigError(
                f"the {what} of {self.options.stream}/{self.options.durable} does not exist: "
                "run `redrive nats provision` (or start with provision=True)",
                key="nats",
            ) from None

    async def dlq_depth(self) -> int:
        """Messages in this consumer's DLQ stream now (also kept in ``stats``)."""
        name = self.options.dlq.stream_for(self.options.stream)
        depth = int((await self._js.stream_info(name)).state.messages)
        self._dlq_depth = depth
        return depth

    async def _heartbeat(self) -> None:
        """``in_progress()`` for every message whose handlers have run a third of
        ``ack_wait``, every third of it: long handlers keep their delivery."""
        interval = max(self.options.ack_wait / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            now = self._loop_time()
            for msg, started in list(self._running.values()):
                if now - started >= interval:
                    with contextlib.suppress(Exception):
                        await msg.in_progress()

    async def _watch_depth(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # a gauge: the next read will do
                await self.dlq_depth()
            await asyncio.sleep(DEPTH_EVERY)

    async def stop(self) -> None:
        """Stop fetching, finish the messages in flight, stop the scheduler, disconnect."""
        self._stopping = True
        if self._depth_task is not None:
            self._depth_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._depth_task
            self._depth_task = None
        if self._fetcher is not None:
            self._fetcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fetcher
            self._fetcher = None
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._beater is not None:
            self._beater.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beater
            self._beater = None
        if self._advisories is not None:
            await self._advisories.stop()
            self._advisories = None
        await self.bus.stop()
        if self._nc is not None:
            # flush, not drain: the acks sent so far reach the server (PING/PONG), and no
            # wait for pull subscriptions' stray deliveries (those are redelivered anyway)
            with contextlib.suppress(Exception):
                await self._nc.flush(timeout=5)
            with contextlib.suppress(Exception):
                await self._nc.close()
            self._nc = None

    async def __aenter__(self) -> JetStreamConsumer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stop()

    # -- fetching -----------------------------------------------------------------------
    async def _fetch_loop(self) -> None:
        while not self._stopping:
            free = self.options.concurrency - len(self._inflight)
            if free <= 0:
                self._slot.clear()
                await self._slot.wait()
                continue
            try:
                msgs = await self._sub.fetch(min(self.options.batch, free), FETCH_TIMEOUT)
            except (TimeoutError, NatsTimeout):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a disconnection: the client reconnects by itself
                logger.warning(
                    "fetch from %s failed (%s); again in 1s",
                    self.options.durable,
                    exc or type(exc).__name__,
                )
                await asyncio.sleep(1.0)
                continue
            for msg in msgs:
                self._start(msg)

    def _start(self, msg: Any) -> None:
        """Handle ``msg`` eagerly, as Python 3.12's eager tasks do: most messages (quick
        handlers) finish without ever suspending, and cost no task at all; one that
        suspends goes on in a task, in its own context either way."""
        try:
            task = start_eagerly(self._handle(msg))
        except Exception:
            logger.exception("message handling failed")
            return
        if task is None:
            return
        self._inflight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slot.set()
        if not task.cancelled() and task.exception() is not None:
            logger.error("message handling failed", exc_info=task.exception())

    # -- one message --------------------------------------------------------------------
    async def _handle(self, msg: Any) -> None:
        sequence, delivered, stored_at = delivery(msg)
        specs = self.bus.handlers(msg.subject)
        self._counts["processed"] += 1
        if not specs:
            self._counts["skipped"] += 1
            await msg.ack()
            return
        error: Exception | None = None
        try:
            payload = decode(msg.data)
        except UndecodableMessage as exc:
            payload, error = undecodable_payload(msg.data), exc
        event = event_of(
            msg.subject,
            msg.headers,
            payload,
            stream=self.options.stream,
            sequence=sequence,
            stored_at=stored_at,
        )
        if error is not None:
            outcomes = [Outcome(spec, error, 0.0) for spec in specs]
        else:
            outcomes = await self._run(msg, event, specs)
        failed = [o for o in outcomes if o.error is not None]
        engine = self.bus.engine
        for o in outcomes:
            if o.error is None:
                engine.succeeded(event, o)
        if not failed:
            await msg.ack()
            self._counts["acked"] += 1
            return
        decisions = [engine.decide(o.spec, _error(o), delivered) for o in failed]
        delay = self._broker_delay(decisions, all_failed=len(failed) == len(outcomes))
        if delay is not None:
            await msg.nak(delay=delay)
            self._counts["retries"] += 1
            return
        origin = origin_of(
            stream=self.options.stream,
            consumer=self.options.durable,
            sequence=sequence,
            delivered=delivered,
            subject=msg.subject,
            raw=msg.data if error is not None else None,
        )
        await self.settle(msg, event, failed, decisions, origin, data=msg.data)

    async def _run(self, msg: Any, event: Event, specs: list[HandlerSpec]) -> list[Outcome]:
        engine = self.bus.engine
        key = id(msg)
        self._running[key] = (msg, self._loop_time())
        try:
            if len(specs) == 1:
                return [await engine.run(specs[0], event)]
            return list(await asyncio.gather(*(engine.run(s, event) for s in specs)))
        finally:
            del self._running[key]

    def _broker_delay(self, decisions: list[Decision], *, all_failed: bool) -> float | None:
        """The nak delay when every failure goes back to the broker, else None."""
        due = [d.retry_at for d in decisions if d.retry_at is not None]
        if not all_failed or len(due) < len(decisions):  # one is dead: to the store
            return None
        now = self.bus.clock.now()
        delays = [max(0.0, (when - now).total_seconds()) for when in due]
        longest = max(delays)
        return longest if longest <= self.options.broker_retry_max else None

    async def settle(
        self,
        msg: Any,
        event: Event,
        failed: Sequence[Outcome],
        decisions: Sequence[Decision],
        origin: dict[str, Any],
        *,
        data: bytes,
        headers: dict[str, str] | None = None,
    ) -> bool:
        """Record each failure, copy dead ones to the DLQ, then term or ack ``msg``; on a
        store or DLQ error nak it with ``store_retry_delay``. Returns whether it settled."""
        engine = self.bus.engine
        attempt = int(origin["delivered"])
        try:
            records = []
            for o, d in zip(failed, decisions, strict=True):
                failure = engine.failure_record(
                    event, o, attempt=attempt, decision=d, origin=origin
                )
                records.append(await engine.record(failure, o))
            dead = [r for r in records if r.status == Status.DEAD]
            if dead and self.options.dlq.enabled:
                for record in dead:
                    original = headers if headers is not None else dict(msg.headers or {})
                    await self.copy_to_dlq(record, data, original)
        except Exception as exc:
            logger.warning(
                "cannot record the failure of %s: %s; redelivery in %.0fs",
                event.id,
                exc,
                self.options.store_retry_delay,
            )
            self._counts["store_errors"] += 1
            if msg is not None:
                with contextlib.suppress(Exception):
                    await msg.nak(delay=self.options.store_retry_delay)
            return False
        self._counts["dead"] += len(dead)
        self._counts["scheduled"] += len(records) - len(dead)
        if msg is None:
            return True
        if dead:
            await self.term(msg, f"redrive dead letter {dead[0].id}")
        else:
            await msg.ack()
            self._counts["acked"] += 1
            self.bus.scheduler.wake()
        return True

    async def copy_to_dlq(self, record: DeadLetter, data: bytes, headers: dict[str, str]) -> int:
        """Publish the DLQ copy of a dead ``record`` and wait for the server's ack."""
        dlq = self.options.dlq
        seq = await publish_copy(
            self._js,
            record,
            data,
            dlq.subject_for(record.topic),
            stream=dlq.stream_for(self.options.stream),
            original=headers,
        )
        self._counts["dlq_published"] += 1
        return seq

    async def term(self, msg: Any, reason: str) -> None:
        """Terminate ``msg`` and wait for the server to confirm (the reason goes into the
        MSG_TERMINATED advisory)."""
        await self._nc.request(msg.reply, f"+TERM {reason}".encode(), timeout=5)
        msg._ackd = True  # settled: the client must not let anyone ack it again


def _error(outcome: Outcome) -> Exception:
    assert outcome.error is not None, "only failed outcomes are decided"
    return outcome.error
