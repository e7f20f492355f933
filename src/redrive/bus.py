"""EventBus: the in-process source of events, and the owner of a scheduler.

``publish`` runs every handler of the topic; each (event, handler) pair succeeds or fails
on its own. A failure is durable in the store before ``publish`` returns; ``async with
bus`` runs the scheduler that retries it and runs operators' replays.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from redrive._clock import Clock, SystemClock
from redrive._json import check_event, check_fields
from redrive.config import Settings
from redrive.core.engine import Engine, HandlerFn, HandlerSpec, handler_name
from redrive.core.scheduler import HandlerKey, Scheduler
from redrive.core.writer import BatchWriter
from redrive.exceptions import RedriveError
from redrive.hooks import Hook, Hooks
from redrive.models import JSON, DeadLetter, Event
from redrive.policy import RetryPolicy
from redrive.stores.base import Store

F = TypeVar("F", bound=HandlerFn)


class EventBus:
    """An in-process event bus with a dead-letter queue behind every handler.

    :param store: where failures are kept (``open_store(url)``).
    :param policy: the default retry policy, for handlers and topics that set none.
    :param settings: configuration (per-topic and per-handler policies); see ``Settings``.
    :param hooks: observers of outcomes (metrics, alerts, logs).
    :param service: the service name kept on every record (default: the program's name).
    :param version: your app's version, kept on every record, so an operator can select
        "everything that failed on release X".
    :param poll_interval: the longest the scheduler sleeps between looks at the store.
    :param concurrency: retries run at once by the scheduler, and threads for plain
        ``def`` handlers.
    :param lease: how long a claimed retry is held without a heartbeat: how soon the
        retries of a process that died run elsewhere. While an attempt runs, the scheduler
        renews its lease every third of this, however long the handler takes.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        store: Store,
        *,
        policy: RetryPolicy | None = None,
        settings: Settings | None = None,
        hooks: Sequence[Hook] = (),
        service: str | None = None,
        version: str | None = None,
        clock: Clock | None = None,
        poll_interval: float = 1.0,
        concurrency: int = 50,
        lease: timedelta = timedelta(minutes=1),
    ) -> None:
        self.store = store
        self.settings = settings or Settings()
        self._default_policy = policy
        self.clock = clock or SystemClock()
        self.hooks = Hooks(hooks)
        self._handlers: dict[str, list[HandlerSpec]] = {}
        self._by_key: dict[HandlerKey, HandlerSpec] = {}
        consumer = {
            "service": service or self.settings.service or _program_name(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "version": version or self.settings.version,
        }
        self.engine = Engine(
            store,
            writer=BatchWriter(store),
            hooks=self.hooks,
            clock=self.clock,
            consumer={k: v for k, v in consumer.items() if v is not None},
            redactor=self.settings.redactor(),
            handler_threads=concurrency,
        )
        self.scheduler = Scheduler(
            store,
            self.engine,
            lambda: self._by_key,
            clock=self.clock,
            poll_interval=poll_interval,
            concurrency=concurrency,
            lease=lease,
        )

    # -- registration ------------------------------------------------------------------
    def handler(
        self,
        topic: str,
        *,
        name: str | None = None,
        policy: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> Callable[[F], F]:
        """Decorator: subscribe the function to ``topic``. See :meth:`subscribe`."""

        def register(fn: F) -> F:
            self.subscribe(topic, fn, name=name, policy=policy, timeout=timeout)
            return fn

        return register

    def subscribe(
        self,
        topic: str,
        fn: HandlerFn,
        *,
        name: str | None = None,
        policy: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> HandlerSpec:
        """Subscribe ``fn`` (``async def`` or plain ``def``) to ``topic``.

        :param name: the handler's stable name in the store (default ``module.qualname``).
            Keep it when you rename the function, or its pending retries are orphaned.
        :param policy: this handler's retry policy (the config can override it).
        :param timeout: seconds an attempt may take before it fails with ``TimeoutError``.
        """
        name = name or handler_name(fn)
        effective = self.settings.policy_for(topic, name, policy, fallback=self._default_policy)
        spec = HandlerSpec.of(topic, fn, name=name, policy=effective, timeout=timeout)
        if (topic, spec.name) in self._by_key:
            raise RedriveError(f"handler {spec.name!r} is already subscribed to {topic!r}")
        self._handlers.setdefault(topic, []).append(spec)
        self._by_key[(topic, spec.name)] = spec
        return spec

    def handlers(self, topic: str | None = None) -> list[HandlerSpec]:
        """The subscribed handlers, of one topic or of all."""
        if topic is not None:
            return list(self._handlers.get(topic, ()))
        return list(self._by_key.values())

    # -- publishing --------------------------------------------------------------------
    async def publish(
        self,
        topic: str | Event,
        payload: JSON = None,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        correlation_id: str | None = None,
        tenant_id: str | None = None,
        source: str | None = None,
    ) -> Event:
        """Run every handler of ``topic`` for a new event; return the event.

        Handler errors do not propagate: each failure is recorded, durably, before this
        returns. Raises ``StoreUnavailable`` if a failure could not be recorded, so that
        the caller's transaction or the broker's redelivery keeps the event.

        The payload must be plain JSON and the headers must map strings to strings, the
        rule the outbox applies too: a ``datetime``, ``Decimal``, ``set``, ``bytes`` or
        ``tuple``, a non-string key, NaN, or a header value that is not a string is
        refused with ``NotJSON`` (an ``InvalidInput``) before any handler runs, rather
        than stored as something a replay would not give back.
        """
        if isinstance(topic, Event):
            event = topic
            check_event(
                event.topic,
                event.payload,
                event.headers,
                key=event.key,
                correlation_id=event.correlation_id,
                tenant_id=event.tenant_id,
                source=event.source,
            )
        else:
            check_event(topic, payload, headers)
            named = (key, correlation_id, tenant_id, source)
            if named != (None, None, None, None):  # a tuple compare: cheap on every publish
                check_fields(
                    topic,
                    key=key,
                    correlation_id=correlation_id,
                    tenant_id=tenant_id,
                    source=source,
                )
            event = Event(
                topic=topic,
                payload=payload,
                key=key,
                headers=dict(headers) if headers else {},
                correlation_id=correlation_id,
                tenant_id=tenant_id,
                source=source,
            )
        specs = self._handlers.get(event.topic)
        if specs is not None and len(specs) == 1:  # dispatch's common case, one frame less
            record = await self.engine.first_attempt(event, specs[0])
            if record is not None and record.next_attempt_at is not None:
                self.scheduler.wake()
            return event
        await self.dispatch(event)
        return event

    async def dispatch(
        self, event: Event, *, origin: Mapping[str, JSON] | None = None
    ) -> list[DeadLetter]:
        """Run the handlers of ``event.topic``; return the failure records written.

        Transports call this with ``origin`` (partition and offset, stream and sequence).
        """
        specs = self._handlers.get(event.topic)
        if not specs:
            return []
        if len(specs) == 1:
            record = await self.engine.first_attempt(event, specs[0], origin=origin)
            if record is None:
                return []
            if record.next_attempt_at is not None:
                self.scheduler.wake()
            return [record]
        results = await asyncio.gather(
            *(self.engine.first_attempt(event, spec, origin=origin) for spec in specs)
        )
        failures = [record for record in results if record is not None]
        if any(record.next_attempt_at is not None for record in failures):
            self.scheduler.wake()
        return failures

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Start the scheduler (retries and replays)."""
        self.scheduler.start()

    async def stop(self) -> None:
        """Stop the scheduler, finish the retries in flight and the pending writes."""
        await self.scheduler.stop()
        await self.engine.writer.close()
        await asyncio.to_thread(self.engine.close)

    async def __aenter__(self) -> EventBus:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stop()


def _program_name() -> str:
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "python"
    return os.path.basename(argv0) or "python"
