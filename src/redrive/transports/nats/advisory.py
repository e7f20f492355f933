"""Crash loops: messages whose every delivery ended with the process (no handler returned).

Such a message reaches the consumer's ``max_deliver`` and the server stops delivering it,
with one signal only: a MAX_DELIVERIES advisory, sent once, lazily, on core NATS. The
advisory stream captures it (provisioning creates both), so it waits there even when no
consumer ran; this reader takes it through a durable consumer, fetches the message by its
stream sequence and records a dead letter with error type ``WorkerLost`` (DLQ copy
included). On work-queue and interest streams the exhausted message is then deleted (the
server keeps it forever otherwise); the advisory is acked last.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from nats.errors import TimeoutError as NatsTimeout
from nats.js import api
from nats.js.errors import NotFoundError

from redrive.core.engine import HandlerSpec, Outcome
from redrive.exceptions import WorkerLost
from redrive.policy import Decision, RetryPolicy
from redrive.transports.nats.envelope import (
    UndecodableMessage,
    decode,
    event_of,
    origin_of,
    undecodable_payload,
)
from redrive.transports.nats.stored import StoredMessage, get_stored

if TYPE_CHECKING:
    from redrive.bus import EventBus
    from redrive.transports.nats.options import NatsOptions

Settle = Callable[..., Awaitable[bool]]
"""``JetStreamConsumer.settle``: record failures (and their DLQ copies); True once done."""

logger = logging.getLogger("redrive.nats.advisory")


class AdvisoryReader:
    """Reads one consumer's MAX_DELIVERIES advisories and records each lost message."""

    def __init__(
        self,
        js: Any,
        options: NatsOptions,
        bus: EventBus,
        settle: Settle,
        on_capture: Callable[[], None],
    ) -> None:
        self.js, self.options, self.bus = js, options, bus
        self._settle = settle
        self._on_capture = on_capture
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="redrive-nats-advisories")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        options, js = self.options, self.js
        sub = await js.pull_subscribe_bind(
            durable=options.advisories.durable_for(options.stream, options.durable),
            stream=options.advisories.stream,
        )
        while True:
            try:
                msgs = await sub.fetch(10, 2.0)
            except (TimeoutError, NatsTimeout):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a disconnection: the client reconnects by itself
                logger.warning(
                    "fetching advisories failed (%s); again in 1s", exc or type(exc).__name__
                )
                await asyncio.sleep(1.0)
                continue
            for msg in msgs:
                await self._handle(msg)

    async def _handle(self, msg: Any) -> None:
        try:
            advisory = json.loads(msg.data)
            stream, sequence = str(advisory["stream"]), int(advisory["stream_seq"])
            deliveries = int(advisory.get("deliveries") or 0)
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a malformed advisory: %r", msg.data[:200])
            await msg.ack()
            return
        try:
            settled = await self.capture(stream, sequence, deliveries)
        except Exception:
            logger.exception("cannot capture lost message %s/%d", stream, sequence)
            settled = False
        if settled:
            await msg.ack()
        else:
            await msg.nak(delay=self.options.store_retry_delay)

    async def capture(self, stream: str, sequence: int, deliveries: int) -> bool:
        """Record the message at ``sequence`` as lost by its workers; True once done."""
        js = self.js
        config = (await js.stream_info(stream)).config
        stored = await get_stored(js, stream, sequence, direct=bool(config.allow_direct))
        if stored is None:  # settled after all (a stale ack), or aged out
            logger.warning("lost message %s/%d is no longer in the stream", stream, sequence)
            return True
        if not await self._record(stored, deliveries):
            return False
        self._on_capture()
        if config.retention != api.RetentionPolicy.LIMITS:
            with contextlib.suppress(NotFoundError):
                await js.delete_msg(stream, sequence)
        return True

    async def _record(self, stored: StoredMessage, deliveries: int) -> bool:
        specs = self.bus.handlers(stored.subject) or [_unhandled(stored.subject)]
        raw: bytes | None = None
        try:
            payload = decode(stored.data)
        except UndecodableMessage:
            payload, raw = undecodable_payload(stored.data), stored.data
        event = event_of(
            stored.subject,
            stored.headers,
            payload,
            stream=stored.stream,
            sequence=stored.sequence,
            stored_at=stored.time,
        )
        error = WorkerLost(
            f"the process stopped during each of the {deliveries} deliveries of this message "
            "(crash loop, kill or out of memory); no handler ever returned"
        )
        failed = [Outcome(spec, error, 0.0) for spec in specs]
        decisions = [Decision(retry_at=None, reason="exhausted") for _ in specs]
        origin = origin_of(
            stream=stored.stream,
            consumer=self.options.durable,
            sequence=stored.sequence,
            delivered=deliveries,
            subject=stored.subject,
            raw=raw,
        )
        return await self._settle(
            None, event, failed, decisions, origin, data=stored.data, headers=stored.headers
        )


UNHANDLED = "redrive.nats.unhandled"
"""The handler name of a lost message whose subject has no handler in this process: it is
recorded all the same (another process's handler crashed on it), never dropped."""


def _unhandled(subject: str) -> HandlerSpec:
    return HandlerSpec.of(
        subject, _nothing, name=UNHANDLED, policy=RetryPolicy(max_attempts=1), timeout=None
    )


def _nothing(event: object) -> None:
    return None
