"""The thin asyncio layer over confluent-kafka (librdkafka), which is not asyncio-native.

- ``AsyncProducer``: a plain ``Producer`` and one poll thread that serves delivery
  reports and resolves asyncio futures through ``loop.call_soon_threadsafe``. (The
  library's ``AIOProducer`` cannot send headers and buffers for up to a second.)
- ``ThreadConsumer``: a ``Consumer`` driven from one dedicated thread, since a
  librdkafka consumer must not be used from two threads at once. Rebalance callbacks run
  in that thread; they hand their work to the event loop and wait for it.
- ``admin_call``: an ``AdminClient`` future awaited through ``asyncio.wrap_future``.

Producers use ``partitioner=murmur2_random``, so a key lands where the Java client (and
Kafka Streams, Spring, Connect) puts it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from redrive.exceptions import TransportError

try:
    import confluent_kafka
    from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.admin._config import AlterConfigOpType, ConfigEntry, ConfigResource
    from confluent_kafka.admin._resource import ResourceType
    from confluent_kafka.cimpl import NewPartitions, NewTopic
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        'redrive\'s Kafka transport needs confluent-kafka: pip install "redrive[kafka]"'
    ) from exc

__all__ = [
    "AdminClient",
    "AlterConfigOpType",
    "AsyncProducer",
    "ConfigEntry",
    "ConfigResource",
    "Consumer",
    "KafkaError",
    "KafkaException",
    "Message",
    "NewPartitions",
    "NewTopic",
    "ResourceType",
    "ThreadConsumer",
    "TopicPartition",
    "admin_call",
    "base_config",
]

T = TypeVar("T")
Headers = list[tuple[str, bytes | None]]

PRODUCER_DEFAULTS: Mapping[str, Any] = {"partitioner": "murmur2_random"}
CONSUMER_DEFAULTS: Mapping[str, Any] = {
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
}


def base_config(bootstrap_servers: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """librdkafka settings: the bootstrap servers and whatever ``extra`` adds."""
    return {"bootstrap.servers": bootstrap_servers, **(extra or {})}


def _only(config: Mapping[str, Any], unwanted: Sequence[str]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in unwanted}


# Settings that only one side accepts; librdkafka warns (or fails) on the other side's.
_CONSUMER_ONLY = (
    "group.id",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "fetch.wait.max.ms",
    "auto.offset.reset",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "max.poll.interval.ms",
    "isolation.level",
    "partition.assignment.strategy",
    "group.instance.id",
    "fetch.min.bytes",
    "enable.partition.eof",
)
_PRODUCER_ONLY = (
    "partitioner",
    "linger.ms",
    "acks",
    "enable.idempotence",
    "transactional.id",
    "compression.type",
    "batch.size",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "transaction.timeout.ms",
    "queue.buffering.max.ms",
)


def producer_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` without consumer-only settings, with the producer defaults under it."""
    return {**PRODUCER_DEFAULTS, **_only(config, _CONSUMER_ONLY)}


def consumer_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` without producer-only settings; auto-commit is always off."""
    merged = {**CONSUMER_DEFAULTS, **_only(config, _PRODUCER_ONLY)}
    merged["enable.auto.commit"] = False
    return merged


def admin_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` without the settings of consumers and producers."""
    return _only(config, (*_CONSUMER_ONLY, *_PRODUCER_ONLY))


class AsyncProducer:
    """A librdkafka producer whose deliveries are awaited.

    :param config: librdkafka settings (``bootstrap.servers`` at least).

    .. versionadded:: 0.1
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._producer = confluent_kafka.Producer(producer_config(config))
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, name="redrive-kafka-producer", daemon=True
        )
        self._thread.start()

    @property
    def raw(self) -> confluent_kafka.Producer:
        """The underlying producer (for transactions)."""
        return self._producer

    def _serve(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.05)

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> Message:
        """Produce one record; return it once the broker has acknowledged it.

        Raises ``TransportError`` if the broker refused it or it timed out.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Message] = loop.create_future()

        def delivered(error: KafkaError | None, message: Message) -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, future, error, message)

        kwargs: dict[str, Any] = {"key": key, "on_delivery": delivered}
        if headers:
            kwargs["headers"] = headers
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self._producer.produce(topic, value, **kwargs)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                await asyncio.sleep(0.01)
            except KafkaException as exc:
                raise TransportError(f"cannot produce to {topic!r}: {exc}") from exc
        return await future

    async def flush(self, within: float = 10.0) -> int:
        """Wait for queued records; return how many are still undelivered."""
        left: int = await asyncio.to_thread(self._producer.flush, within)
        return left

    async def close(self, within: float = 10.0) -> None:
        """Deliver what is queued (for up to ``within`` seconds), then stop polling."""
        await self.flush(within)
        self._closed.set()
        await asyncio.to_thread(self._thread.join, 5)


def _settle(future: asyncio.Future[Message], error: KafkaError | None, message: Message) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(TransportError(f"delivery to {message.topic()!r} failed: {error}"))
    else:
        future.set_result(message)


class ThreadConsumer:
    """A librdkafka consumer used from asyncio, every call in one dedicated thread.

    ``on_assign`` and ``on_revoke`` are coroutine functions taking the partitions; they
    run on the event loop while the consumer thread waits for them (within a rebalance,
    for up to ``callback_timeout`` seconds). ``on_revoke`` returns the offsets to commit
    before the partitions go.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        on_assign: Callable[[list[TopicPartition]], Awaitable[None]] | None = None,
        on_revoke: Callable[[list[TopicPartition]], Awaitable[list[TopicPartition]]] | None = None,
        callback_timeout: float = 60.0,
    ) -> None:
        self._consumer = confluent_kafka.Consumer(consumer_config(config))
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="redrive-kafka-consumer")
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._callback_timeout = callback_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        self.member_id = ""

    @property
    def raw(self) -> confluent_kafka.Consumer:
        """The underlying consumer: use it only through :meth:`call`."""
        return self._consumer

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in the consumer's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: fn(*args, **kwargs))

    async def subscribe(self, topics: Sequence[str]) -> None:
        """Join the group for ``topics``; rebalances call the callbacks."""
        self._loop = asyncio.get_running_loop()
        await self.call(
            self._consumer.subscribe,
            list(topics),
            on_assign=self._assigned,
            on_revoke=self._revoked,
            on_lost=self._revoked,
        )

    def _assigned(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.member_id = self._consumer.memberid() or self.member_id
        if self._on_assign is not None:
            self._wait(self._on_assign(partitions))

    def _revoked(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        if self._on_revoke is None:
            return
        offsets = self._wait(self._on_revoke(partitions))
        if offsets and not self.closed:
            # The group may have moved on already: redelivery covers that.
            with contextlib.suppress(KafkaException):
                self._consumer.commit(offsets=offsets, asynchronous=False)

    def _wait(self, coro: Awaitable[T]) -> T | None:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(_as_coroutine(coro), self._loop)
        try:
            return future.result(timeout=self._callback_timeout)
        except (concurrent.futures.TimeoutError, RuntimeError):
            future.cancel()
            return None

    async def close(self) -> None:
        """Leave the group (a prompt leave: its partitions move at once) and stop."""
        try:
            await self.call(self._consumer.close)
        finally:
            self.closed = True
            self._thread.shutdown(wait=False)


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def admin_call(future: concurrent.futures.Future[T]) -> T:
    """Await an ``AdminClient`` future."""
    return await asyncio.wrap_future(future)
