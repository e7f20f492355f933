"""``KafkaConsumer``: a consumer group whose handlers have a dead-letter queue behind them.

Each partition's messages run in order, one at a time, while the poll loop keeps polling
(pausing a partition whose backlog is full), so ``max.poll.interval.ms`` never expires
however long a handler takes. For each message and handler:

- success: nothing is written;
- a failure whose next retry is due within ``in_place`` seconds is retried in place;
- a later retry becomes a ``scheduled`` record in the store, run by the store scheduler of
  this process (the composed ``EventBus``), so the partition moves on;
- a non-retriable or exhausted failure becomes a ``dead`` record and, unless the DLQ is
  off, a DlqMessage on ``{topic}.dlq``.

An offset is committed only once every message below it is finished: succeeded, or its
record durable in the store and its DlqMessage acknowledged. A crash before that
redelivers; the event id is stable across redeliveries (``envelope.event_id``), so the
store records one dead letter per (message, handler).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal, TypeVar

from redrive.bus import EventBus
from redrive.config import Settings
from redrive.core.engine import HandlerFn, HandlerSpec, Outcome
from redrive.exceptions import ConfigError
from redrive.hooks import Hook
from redrive.models import DeadLetter, Event, Status
from redrive.policy import RetryPolicy
from redrive.stores.base import Store
from redrive.transports.kafka.client import (
    AdminClient,
    KafkaException,
    Message,
    ThreadConsumer,
    TopicPartition,
    admin_config,
    base_config,
)
from redrive.transports.kafka.envelope import Envelope, PartitionDecoder
from redrive.transports.kafka.offsets import CommitTracker, PartitionOffsets, TopicPartitionKey
from redrive.transports.kafka.ordering import KeyOrder, WaitingBehind
from redrive.transports.kafka.publisher import DlqPublisher
from redrive.transports.kafka.settings import KafkaSettings

logger = logging.getLogger("redrive.kafka")

F = TypeVar("F", bound=HandlerFn)
_Tail = Callable[[], Awaitable[None]]
Ordering = Literal["partition", "key"]


class _Partition:
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


class KafkaConsumer:
    """Consume topics in a consumer group and run handlers with a dead-letter queue.

    :param store: where failures are kept (``open_store(url)``).
    :param bootstrap_servers: the brokers, ``host:port[,host:port]``.
    :param group: the consumer group id.
    :param topics: the topics to consume (default: the topics of the handlers).
    :param dlq: write a DlqMessage to ``{topic}.dlq`` for each dead letter.
    :param in_place: the longest retry delay (seconds) waited for in place, blocking the
        partition; longer ones go to the store scheduler.
    :param client: extra librdkafka settings, for the consumer and the producer.
    :param commit_every: commit after this many finished messages (or ``commit_interval``).
    :param max_buffered: messages held per partition before it is paused.
    :param max_pending: failures per partition whose records and DLQ messages may be in
        flight while the partition's next messages run.
    :param revoke_grace: how long a rebalance waits for a running handler before the
        partition goes (its message is then redelivered to the new owner).
    :param transactional_id: write each DlqMessage and the commit of its source offset in
        one transaction (``send_offsets_to_transaction``), so a crash cannot leave a second
        copy on the DLQ topic for ``read_committed`` readers. Failures are then made durable
        one at a time per partition.

    The other parameters are those of ``EventBus``.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        store: Store,
        *,
        bootstrap_servers: str,
        group: str,
        topics: Sequence[str] = (),
        policy: RetryPolicy | None = None,
        settings: Settings | None = None,
        hooks: Sequence[Hook] = (),
        dlq: bool = True,
        in_place: float = 1.0,
        ordering: Ordering = "partition",
        client: Mapping[str, Any] | None = None,
        commit_every: int = 1000,
        commit_interval: float = 1.0,
        max_buffered: int = 1000,
        max_pending: int = 1000,
        poll_batch: int = 500,
        revoke_grace: float = 30.0,
        transactional_id: str | None = None,
        service: str | None = None,
        version: str | None = None,
        poll_interval: float = 1.0,
        concurrency: int = 50,
        lease: timedelta = timedelta(minutes=1),
    ) -> None:
        self.settings = settings or Settings()
        self.kafka = KafkaSettings.of(self.settings)
        self.group = group
        self.dlq = dlq
        self.in_place = in_place
        self.ordering = ordering
        self._topics = tuple(topics)
        self._config = base_config(bootstrap_servers, {**self.kafka.client, **(client or {})})
        self._commit_every = commit_every
        self._commit_interval = commit_interval
        self._max_buffered = max_buffered
        self._max_pending = max_pending
        self._poll_batch = poll_batch
        self._revoke_grace = revoke_grace
        self._dlq = DlqPublisher(
            self._config,
            self.kafka,
            group,
            transactional_id=(transactional_id or self.kafka.transactional_id) if dlq else None,
        )
        self.bus = EventBus(
            store,
            policy=policy,
            settings=self.settings,
            hooks=[*hooks, _DeadHook(self)],
            service=service,
            version=version,
            poll_interval=poll_interval,
            concurrency=concurrency,
            lease=lease,
        )
        self.member = ""
        self._order = KeyOrder(store, group) if ordering == "key" else None
        self._tracker = CommitTracker()
        self._partitions: dict[TopicPartitionKey, _Partition] = {}
        self._inline: set[tuple[str, str]] = set()  # (event id, handler) being recorded here
        self._stopping = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._consumer: ThreadConsumer | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._fast: dict[str, HandlerSpec] = {}  # topics with one plain async handler
        self._user_hooks = bool(hooks)
        self._finished_since_commit = 0
        self._last_commit = time.monotonic()

    @classmethod
    def from_settings(cls, store: Store, settings: Settings, **options: Any) -> KafkaConsumer:
        """A consumer as ``[kafka]`` of the config says (brokers, group, topics, client
        settings, DLQ on or off); ``options`` override it."""
        kafka = KafkaSettings.of(settings)
        defaults: dict[str, Any] = {
            "bootstrap_servers": kafka.bootstrap_servers,
            "group": kafka.group,
            "topics": kafka.topics,
            "dlq": kafka.dlq_enabled,
        }
        merged = {**defaults, **options}
        for name in ("bootstrap_servers", "group"):
            if not merged.get(name):
                raise ConfigError(
                    f"the Kafka consumer needs {name}: set it in [kafka]",
                    source=settings.source,
                    key=f"kafka.{name}",
                )
        return cls(store, settings=settings, **merged)

    # -- registration (the EventBus's) -------------------------------------------------
    def handler(
        self,
        topic: str,
        *,
        name: str | None = None,
        policy: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> Callable[[F], F]:
        """Decorator: run the function for each message of ``topic``."""
        return self.bus.handler(topic, name=name, policy=policy, timeout=timeout)

    def subscribe(self, topic: str, fn: HandlerFn, **options: Any) -> HandlerSpec:
        """Run ``fn`` for each message of ``topic`` (options as for ``EventBus.subscribe``)."""
        return self.bus.subscribe(topic, fn, **options)

    @property
    def store(self) -> Store:
        """The store of the composed bus."""
        return self.bus.store

    @property
    def topics(self) -> list[str]:
        """The topics consumed: those given, else those of the handlers."""
        return list(self._topics) or sorted({spec.topic for spec in self.bus.handlers()})

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Start the scheduler, join the group and start polling. If any of it fails,
        what was started is stopped again before the error propagates."""
        topics = self.topics
        if not topics:
            raise ValueError("no topics to consume: subscribe a handler or pass topics=")
        try:
            await self._start(topics)
        except BaseException:
            await self.stop(grace=5)
            raise

    async def _start(self, topics: list[str]) -> None:
        await self.bus.start()
        self._stopping.clear()
        self._fast = {}
        for topic in topics:
            specs = self.bus.handlers(topic)
            single = len(specs) == 1 and specs[0].is_async and specs[0].timeout is None
            if single and self._order is None:
                self._fast[topic] = specs[0]
        await self._dlq.start()
        if self.dlq:
            await self._check_dlq_topics(topics)
        config = {**self._config, "group.id": self.group}
        self._consumer = ThreadConsumer(
            config,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            callback_timeout=self._revoke_grace + 30,
        )
        await self._consumer.subscribe(topics)
        self._poller = asyncio.create_task(self._poll_loop(), name="redrive-kafka-poll")

    async def _check_dlq_topics(self, topics: list[str]) -> None:
        """Warn about DLQ topics that do not exist: the first dead letter would create one
        with the broker's defaults (if it auto-creates topics at all)."""
        admin = AdminClient(admin_config(self._config))
        try:
            metadata = await asyncio.to_thread(admin.list_topics, timeout=10)
        except KafkaException as exc:
            logger.warning("could not list topics to check the DLQ topics: %s", exc)
            return
        missing = sorted({self.kafka.dlq_topic(t) for t in topics} - set(metadata.topics))
        if missing:
            logger.warning(
                "DLQ topics missing: %s; create them with `redrive kafka provision`",
                ", ".join(missing),
            )

    async def stop(self, grace: float = 30.0) -> None:
        """Stop polling, let running messages finish (for up to ``grace`` seconds), commit
        what is finished, leave the group, and stop the scheduler."""
        self._stopping.set()
        if self._poller is not None:
            await self._poller
            self._poller = None
        tasks = [task for part in self._partitions.values() for task in part.work()]
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        if self._consumer is not None:
            await self._consumer.close()  # revokes: the finished offsets are committed
            self._consumer = None
        if self._background:
            await asyncio.wait(self._background, timeout=grace)
        await self._dlq.close(grace)
        await self.bus.stop()

    async def __aenter__(self) -> KafkaConsumer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stop()

    # -- polling -----------------------------------------------------------------------
    async def _poll_loop(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        while not self._stopping.is_set():
            commits = self._due_commits()
            pause, resume = self._flow_changes()
            try:
                messages = await consumer.call(self._round, commits, pause, resume)
            except Exception:
                logger.exception("polling failed; polling again")
                await asyncio.sleep(0.5)
                continue
            self._route(messages)

    def _round(
        self,
        commits: list[TopicPartition],
        pause: list[TopicPartition],
        resume: list[TopicPartition],
    ) -> list[Message]:
        """One visit to the consumer thread: commit, pause and resume, then consume."""
        assert self._consumer is not None
        raw = self._consumer.raw
        if commits:
            try:
                raw.commit(offsets=commits, asynchronous=True)
            except Exception as exc:  # a later commit carries the same offsets or more
                logger.warning("commit failed: %s", exc)
        if pause:
            raw.pause(pause)
        if resume:
            raw.resume(resume)
        messages: list[Message] = raw.consume(self._poll_batch, 0.1)
        return messages

    def _due_commits(self) -> list[TopicPartition]:
        now = time.monotonic()
        if (
            self._finished_since_commit < self._commit_every
            and now - self._last_commit < self._commit_interval
        ):
            return []
        self._finished_since_commit = 0
        self._last_commit = now
        return [TopicPartition(t, p, o) for (t, p), o in self._tracker.committable().items()]

    def _flow_changes(self) -> tuple[list[TopicPartition], list[TopicPartition]]:
        pause, resume = [], []
        for (topic, partition), part in self._partitions.items():
            size = len(part.queue)
            if not part.paused and size >= self._max_buffered:
                part.paused = True
                pause.append(TopicPartition(topic, partition))
            elif part.paused and size <= self._max_buffered // 2:
                part.paused = False
                resume.append(TopicPartition(topic, partition))
        return pause, resume

    def _route(self, messages: list[Message]) -> None:
        """Queue each message on its partition; start the partition's drain if idle."""
        partitions = self._partitions
        for message in messages:
            error = message.error()
            if error is not None:
                if not error.retriable() and error.fatal():
                    logger.error("consumer failed: %s", error)
                else:
                    logger.debug("consumer: %s", error)
                continue
            part = partitions.get((message.topic(), message.partition()))  # type: ignore[arg-type]
            if part is None or part.revoked:
                continue
            part.queue.append(message)
            if part.task is None:
                part.task = asyncio.create_task(self._drain(part))

    # -- rebalances (called from the consumer thread, run on the loop) ---------------------
    async def _on_assign(self, partitions: list[TopicPartition]) -> None:
        assert self._consumer is not None
        self.member = self._consumer.member_id or self.member
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self._partitions[key] = _Partition(key, self._tracker.reset(key))
        if self._order is not None:
            await self._order.load()
        logger.info("assigned %s", _names(partitions))

    async def _on_revoke(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        running = []
        for key in keys:
            part = self._partitions.get(key)
            if part is None:
                continue
            part.revoked = True
            part.queue.clear()  # not started yet: the next owner reads them again
            running.extend(part.work())
        if running:
            await asyncio.wait(running, timeout=self._revoke_grace)
        safe = self._tracker.safe_offsets(keys)
        self._tracker.forget(keys)
        for key in keys:
            self._partitions.pop(key, None)
        logger.info("revoked %s", _names(partitions))
        return [TopicPartition(t, p, o) for (t, p), o in safe.items()]

    # -- processing --------------------------------------------------------------------
    async def _drain(self, part: _Partition) -> None:
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
                        self._finished_since_commit += 1
                        continue
                else:
                    tails = await self._run_handlers(Envelope(message, event, error))
                if not tails:
                    offsets.passed(offset)
                    self._finished_since_commit += 1
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

    async def _complete(self, part: _Partition, offset: int, tails: list[_Tail]) -> None:
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
        self._finished_since_commit += 1

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
                elif self.dlq:
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
        assert self._consumer is not None
        group = await self._consumer.call(self._consumer.raw.consumer_group_metadata)
        await self._dlq.publish_with_commit(record, self.member, group)

    def _dead_elsewhere(self, record: DeadLetter) -> None:
        """A record died in the scheduler (a long retry ran out): its DlqMessage too."""
        if not self.dlq or record.origin.get("transport") != "kafka":
            return
        if (record.event.id, record.handler) in self._inline:
            return  # the consumer writes it itself, before it commits
        self._dlq.publish_later(record, self.member)


class _DeadHook(Hook):
    """DlqMessages of records that die in the scheduler; key chains moved on."""

    def __init__(self, consumer: KafkaConsumer) -> None:
        self._consumer = consumer

    def on_dead(self, record: DeadLetter) -> None:
        self._consumer._dead_elsewhere(record)
        self._settled(record)

    def on_success(
        self, event: Event, handler: str, duration: float, record: DeadLetter | None
    ) -> None:
        if record is not None:
            self._settled(record)

    def _settled(self, record: DeadLetter) -> None:
        order = self._consumer._order
        if order is not None:
            task = order.settled(record)
            if task is not None:
                self._consumer._background.add(task)
                task.add_done_callback(self._consumer._background.discard)


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
