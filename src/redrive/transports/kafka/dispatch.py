"""Handler dispatch for ``KafkaConsumer``: each assigned partition's messages, in offset
order, through the handlers, and each failure's durable tail.

The poll loop (consumer.py) queues messages on their ``Partition``; the ``Dispatcher``
drains each partition in a task of its own, one message at a time:

- success: nothing is written, the offset passes;
- a failure whose next retry is due within ``in_place`` seconds is retried in place;
- a later retry becomes a ``scheduled`` record in the store, run by the store scheduler of
  the consumer's process, so the partition moves on;
- a non-retriable or exhausted failure becomes a ``dead`` record and, unless the DLQ is
  off, a DlqMessage on ``{topic}.dlq``.

A failure's durable tail (the store write, the DLQ produce) overlaps the partition's next
messages; its offset is held until the tail is done, so no commit passes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redrive.bus import EventBus
from redrive.core.engine import HandlerSpec, Outcome
from redrive.hooks import Hook
from redrive.models import DeadLetter, Event, Status
from redrive.transports.kafka.client import Message
from redrive.transports.kafka.envelope import Envelope, PartitionDecoder
from redrive.transports.kafka.offsets import PartitionOffsets, TopicPartitionKey
from redrive.transports.kafka.ordering import KeyOrder, WaitingBehind
from redrive.transports.kafka.publisher import DlqPublisher

logger = logging.getLogger("redrive.kafka")

_Tail = Callable[[], Awaitable[None]]


class Partition:
    """One assignment of a partition: its backlog, the task that drains it, its offsets
    (a new object per assignment, so a late finish of an old one commits nothing) and
    the decoder of its records."""

    __slots__ = ("decode", "key", "offsets", "paused", "queue", "revoked", "tails", "task")

    def __init__(self, key: TopicPartitionKey, offsets: PartitionOffsets) -> None:
        self.key = key
        self.offsets = offsets
        self.decode = PartitionDecoder(*key)
        self.queue: deque[Message] = deque()
        self.task: asyncio.Task[None] | None = None
        self.tails: set[asyncio.Task[None]] = set()
        self.paused = False
        self.revoked = False

    def work(self) -> list[asyncio.Task[None]]:
        """The tasks still running for this partition."""
        return [*([self.task] if self.task is not None else []), *self.tails]


class Dispatcher:
    """Runs the partitions' messages through the bus's handlers (see the module).

    :param group_metadata: the consumer's group metadata, for a transactional DLQ write.
    :param user_hooks: whether the user gave hooks (the fast path then calls
        ``on_success``).
    """

    def __init__(
        self,
        bus: EventBus,
        dlq: DlqPublisher,
        *,
        dlq_on: bool,
        order: KeyOrder | None,
        group: str,
        in_place: float,
        max_pending: int,
        stopping: asyncio.Event,
        group_metadata: Callable[[], Awaitable[Any]],
        user_hooks: bool,
    ) -> None:
        self.bus = bus
        self.group = group
        self.in_place = in_place
        self.member = ""
        self.finished = 0  # messages finished since the poll loop last took the count
        self.background: set[asyncio.Task[Any]] = set()
        self._dlq = dlq
        self._dlq_on = dlq_on
        self._order = order
        self._max_pending = max_pending
        self._stopping = stopping
        self._group_metadata = group_metadata
        self._user_hooks = user_hooks
        self._fast: dict[str, HandlerSpec] = {}  # topics with one plain async handler
        self._inline: set[tuple[str, str]] = set()  # (event id, handler) being recorded here

    def prepare(self, topics: Sequence[str]) -> None:
        """Note the topics whose one handler can be called directly: a single async
        handler without a timeout, and no key ordering."""
        self._fast = {}
        for topic in topics:
            specs = self.bus.handlers(topic)
            single = len(specs) == 1 and specs[0].is_async and specs[0].timeout is None
            if single and self._order is None:
                self._fast[topic] = specs[0]

    def wake(self, part: Partition) -> None:
        """Start draining ``part`` unless a task already does."""
        if part.task is None:
            part.task = asyncio.create_task(self._drain(part))

    async def _drain(self, part: Partition) -> None:
        """Run the partition's messages in order. A message's handlers run one message
        after another; its durable tail (the store write, the DLQ produce) overlaps the
        next messages, and the partition's offsets let no commit pass it until it is done."""
        queue, decode, offsets = part.queue, part.decode, part.offsets
        fast = self._fast.get(part.key[0])  # one async handler, no timeout: the common case
        hooks = self.bus.engine.hooks if self._user_hooks else None
        try:
            while queue and not part.revoked:
                message = queue.popleft()
                offset: int = message.offset()  # type: ignore[assignment]
                event, error = decode(message, offset)
                if fast is not None and error is None:
                    start = time.perf_counter()
                    try:
                        await fast.fn(event)
                    except Exception as exc:
                        failed = Outcome(fast, exc, time.perf_counter() - start)
                        env = Envelope(message, event, error)
                        tail = await self._attempts(env, fast, failed)
                        tails = [] if tail is None else [tail]
                    else:
                        if hooks is not None:
                            hooks.on_success(event, fast.name, time.perf_counter() - start, None)
                        offsets.passed(offset)
                        self.finished += 1
                        continue
                else:
                    tails = await self._run_handlers(Envelope(message, event, error))
                if not tails:
                    offsets.passed(offset)
                    self.finished += 1
                    continue
                offsets.hold(offset)
                if self._order is not None or self._dlq.transactional:
                    # A key's chain is written before the next message; a transaction
                    # commits the offset after this one, so everything below must be done.
                    await self._complete(part, offset, tails)
                else:
                    task = asyncio.create_task(self._complete(part, offset, tails))
                    part.tails.add(task)
                    task.add_done_callback(part.tails.discard)
                    if len(part.tails) >= self._max_pending:
                        await asyncio.wait(part.tails, return_when=asyncio.FIRST_COMPLETED)
        finally:
            part.task = None

    async def _complete(self, part: Partition, offset: int, tails: list[_Tail]) -> None:
        """Make a message's failures durable, then release its offset. A store or broker
        outage is retried: the offset stays held, nothing past it is committed."""
        tp = part.key
        for tail in tails:
            delay = 0.5
            while True:
                try:
                    await tail()
                    break
                except Exception:
                    if part.revoked or self._stopping.is_set():
                        logger.warning("left %s[%d]@%d unfinished: redelivered", *tp, offset)
                        return
                    logger.exception(
                        "could not record %s[%d]@%d; trying again in %.1fs", *tp, offset, delay
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
        # Released on this assignment's offsets, revoked or not: a revocation waits for
        # the running work and commits what finished within the grace. Once the
        # partition is gone or assigned again, these offsets are nobody's any more.
        part.offsets.release(offset)
        self.finished += 1

    async def _run_handlers(self, env: Envelope) -> list[_Tail]:
        specs = self.bus.handlers(env.event.topic)
        if len(specs) == 1:
            tail = await self._attempts(env, specs[0])
            return [] if tail is None else [tail]
        results = await asyncio.gather(*(self._attempts(env, spec) for spec in specs))
        return [tail for tail in results if tail is not None]

    async def _attempts(
        self, env: Envelope, spec: HandlerSpec, failed: Outcome | None = None
    ) -> _Tail | None:
        """Run ``spec`` (retrying in place while the delays are short); return what must
        be made durable, or None on success. ``failed``: the first attempt already ran."""
        engine = self.bus.engine
        event = env.event
        if self._order is not None and failed is None:
            head = await self._order.head(event.topic, spec.name, event.key)
            if head is not None and head.event.id == event.id:
                return None  # redelivered after a crash: its record heads the chain already
            if head is not None:
                return functools.partial(self._park, env, spec, head.id)
        attempt = 1
        while True:
            if failed is not None:
                outcome, failed = failed, None
            elif env.error is None:
                outcome = await engine.run(spec, event)
                if outcome.error is None:
                    engine.succeeded(event, outcome)
                    return None
            else:
                outcome = Outcome(spec, env.error, 0.0)
            assert outcome.error is not None
            decision = engine.decide(spec, outcome.error, attempt)
            if decision.retry_at is not None:
                wait = (decision.retry_at - engine.clock.now()).total_seconds()
                if wait <= self.in_place and not await self._stopped_within(wait):
                    attempt += 1
                    continue
            record = engine.failure_record(
                event, outcome, attempt=attempt, decision=decision, origin=self._origin(env)
            )
            return self._tail(record, outcome)

    def _tail(self, record: DeadLetter, outcome: Outcome) -> _Tail:
        """The durable part of a failure: the record in the store, then its DlqMessage (or
        its key's chain). Retried step by step: a stored record is not written again."""
        stored: list[DeadLetter] = []

        async def write() -> None:
            if not stored:
                stored.append(await self._record(record, outcome))
            final = stored[0]
            if final.status == Status.DEAD:
                if self._dlq.transactional:
                    await self._publish_with_commit(final)
                elif self._dlq_on:
                    await self.publish_dead(final)
                return
            if self._order is not None:
                await self._order.block(final)
            self.bus.scheduler.wake()

        return write

    async def _record(self, record: DeadLetter, outcome: Outcome) -> DeadLetter:
        key = (record.event.id, record.handler)
        self._inline.add(key)
        try:
            return await self.bus.engine.record(record, outcome)
        finally:
            self._inline.discard(key)

    async def _park(self, env: Envelope, spec: HandlerSpec, head: str) -> None:
        """Store the message behind ``head``, its key's earlier message (ordering="key")."""
        assert self._order is not None
        outcome = Outcome(spec, WaitingBehind(f"waiting behind {head}"), 0.0)
        record = self.bus.engine.failure_record(env.event, outcome, origin=self._origin(env))
        parked = await self._order.park(record, head)
        await self._record(parked, outcome)

    def _origin(self, env: Envelope) -> dict[str, Any]:
        return env.origin(group=self.group, member=self.member)

    async def _stopped_within(self, seconds: float) -> bool:
        if seconds <= 0:
            return self._stopping.is_set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()

    async def publish_dead(self, record: DeadLetter) -> None:
        """Write the DlqMessage of ``record`` to its DLQ topic; return once acknowledged."""
        await self._dlq.publish(record, self.member)

    async def _publish_with_commit(self, record: DeadLetter) -> None:
        group = await self._group_metadata()
        await self._dlq.publish_with_commit(record, self.member, group)

    def dead_elsewhere(self, record: DeadLetter) -> None:
        """A record died in the scheduler (a long retry ran out): its DlqMessage too."""
        if not self._dlq_on or record.origin.get("transport") != "kafka":
            return
        if (record.event.id, record.handler) in self._inline:
            return  # the consumer writes it itself, before it commits
        self._dlq.publish_later(record, self.member)

    def settled(self, record: DeadLetter) -> None:
        """``record`` succeeded or died in the scheduler: with ordering="key", its key's
        chain moves on (in the background)."""
        order = self._order
        if order is not None:
            task = order.settled(record)
            if task is not None:
                self.background.add(task)
                task.add_done_callback(self.background.discard)


class DeadHook(Hook):
    """DlqMessages of records that die in the scheduler; key chains moved on. Created
    before the bus it is a hook of, attached to the dispatcher once that exists."""

    def __init__(self) -> None:
        self._dispatcher: Dispatcher | None = None

    def attach(self, dispatcher: Dispatcher) -> None:
        """Send this hook's work to ``dispatcher``."""
        self._dispatcher = dispatcher

    def on_dead(self, record: DeadLetter) -> None:
        if self._dispatcher is not None:
            self._dispatcher.dead_elsewhere(record)
            self._dispatcher.settled(record)

    def on_success(
        self, event: Event, handler: str, duration: float, record: DeadLetter | None
    ) -> None:
        if record is not None and self._dispatcher is not None:
            self._dispatcher.settled(record)
