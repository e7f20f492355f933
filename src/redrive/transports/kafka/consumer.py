"""``KafkaConsumer``: a consumer group whose handlers have a dead-letter queue behind them.

This module holds the lifecycle, the poll loop and the rebalances; dispatch.py runs the
messages through the handlers. Each partition's messages run in order, one at a time,
while the poll loop keeps polling (pausing a partition whose backlog is full), so
``max.poll.interval.ms`` never expires however long a handler takes. Success writes
nothing; short retries run in place; longer ones become ``scheduled`` records run by the
store scheduler of this process (the composed ``EventBus``); a non-retriable or exhausted
failure becomes a ``dead`` record and, unless the DLQ is off, a DlqMessage on
``{topic}.dlq``.

An offset is committed only once every message below it is finished: succeeded, or its
record durable in the store and its DlqMessage acknowledged. A crash before that
redelivers; the event id is stable across redeliveries (``envelope.event_id``), so the
store records one dead letter per (message, handler).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal, TypeVar

from redrive.bus import EventBus
from redrive.config import Settings
from redrive.core.engine import HandlerFn, HandlerSpec
from redrive.exceptions import ConfigError
from redrive.hooks import Hook
from redrive.models import DeadLetter
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
from redrive.transports.kafka.dispatch import DeadHook, Dispatcher, Partition
from redrive.transports.kafka.offsets import CommitTracker, TopicPartitionKey
from redrive.transports.kafka.ordering import KeyOrder
from redrive.transports.kafka.publisher import DlqPublisher
from redrive.transports.kafka.settings import KafkaSettings

logger = logging.getLogger("redrive.kafka")

F = TypeVar("F", bound=HandlerFn)
Ordering = Literal["partition", "key"]


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
        self._poll_batch = poll_batch
        self._revoke_grace = revoke_grace
        self._dlq = DlqPublisher(
            self._config,
            self.kafka,
            group,
            transactional_id=(transactional_id or self.kafka.transactional_id) if dlq else None,
        )
        dead_hook = DeadHook()
        self.bus = EventBus(
            store,
            policy=policy,
            settings=self.settings,
            hooks=[*hooks, dead_hook],
            service=service,
            version=version,
            poll_interval=poll_interval,
            concurrency=concurrency,
            lease=lease,
        )
        self._order = KeyOrder(store, group) if ordering == "key" else None
        self._tracker = CommitTracker()
        self._partitions: dict[TopicPartitionKey, Partition] = {}
        self._stopping = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._consumer: ThreadConsumer | None = None
        self._dispatch = Dispatcher(
            self.bus,
            self._dlq,
            dlq_on=dlq,
            order=self._order,
            group=group,
            in_place=in_place,
            max_pending=max_pending,
            stopping=self._stopping,
            group_metadata=self._group_metadata,
            user_hooks=bool(hooks),
        )
        dead_hook.attach(self._dispatch)
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
    def member(self) -> str:
        """This consumer's member id in the group ("" until the first assignment)."""
        return self._dispatch.member

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
        self._dispatch.prepare(topics)
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
        if self._dispatch.background:
            await asyncio.wait(self._dispatch.background, timeout=grace)
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
            self._dispatch.finished < self._commit_every
            and now - self._last_commit < self._commit_interval
        ):
            return []
        self._dispatch.finished = 0
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
        partitions, wake = self._partitions, self._dispatch.wake
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
                wake(part)

    # -- rebalances (called from the consumer thread, run on the loop) ---------------------
    async def _on_assign(self, partitions: list[TopicPartition]) -> None:
        assert self._consumer is not None
        self._dispatch.member = self._consumer.member_id or self._dispatch.member
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self._partitions[key] = Partition(key, self._tracker.reset(key))
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

    # -- what the dispatcher asks of the consumer -----------------------------------------
    async def publish_dead(self, record: DeadLetter) -> None:
        """Write the DlqMessage of ``record`` to its DLQ topic; return once acknowledged."""
        await self._dispatch.publish_dead(record)

    async def _group_metadata(self) -> Any:
        assert self._consumer is not None
        return await self._consumer.call(self._consumer.raw.consumer_group_metadata)


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
