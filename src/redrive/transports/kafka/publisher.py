"""Writing DlqMessages: acknowledged one by one, in a transaction with the source offset's
commit, or in the background for records that die in the scheduler."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from redrive.models import DeadLetter
from redrive.transports.kafka.client import AsyncProducer, TopicPartition
from redrive.transports.kafka.dlq import dlq_record, message_for
from redrive.transports.kafka.settings import KafkaSettings

logger = logging.getLogger("redrive.kafka")


class DlqPublisher:
    """The producers of one consumer's DLQ writes.

    :param transactional_id: also keep a transactional producer, for
        :meth:`publish_with_commit`.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        kafka: KafkaSettings,
        group: str,
        *,
        transactional_id: str | None = None,
    ) -> None:
        self._config = dict(config)
        self._kafka = kafka
        self._group = group
        self._transactional_id = transactional_id
        self._producer: AsyncProducer | None = None
        self._txn: AsyncProducer | None = None
        self._txn_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()

    @property
    def transactional(self) -> bool:
        """Whether dead letters and their offsets are written in transactions."""
        return self._transactional_id is not None

    async def start(self) -> None:
        """Create the producers (and register the transactional id with the broker)."""
        self._producer = AsyncProducer(self._config)
        if self._transactional_id is not None:
            txn_config = {**self._config, "transactional.id": self._transactional_id}
            self._txn = AsyncProducer(txn_config)
            await asyncio.to_thread(self._txn.raw.init_transactions, 30)

    async def close(self, grace: float) -> None:
        """Finish the background writes (for up to ``grace`` seconds), then the producers."""
        if self._background:
            await asyncio.wait(self._background, timeout=grace)
        for producer in (self._producer, self._txn):
            if producer is not None:
                await producer.close()
        self._producer = self._txn = None

    def _message(self, record: DeadLetter, member: str) -> tuple[str, bytes, Any, Any, Any]:
        message = message_for(record, group=self._group, member=member or None)
        key, headers = dlq_record(record, message)
        topic = self._kafka.dlq_topic(message.original_topic)
        return topic, message.to_json(), key, headers, message

    async def publish(self, record: DeadLetter, member: str) -> None:
        """Write the DlqMessage of ``record``; return once the broker acknowledged it."""
        assert self._producer is not None
        topic, value, key, headers, _ = self._message(record, member)
        await self._producer.send(topic, value, key=key, headers=headers)

    async def publish_with_commit(self, record: DeadLetter, member: str, group: Any) -> None:
        """The DlqMessage and the commit past its source offset, in one transaction
        (``group``: the consumer's ``consumer_group_metadata()``)."""
        assert self._txn is not None
        producer, raw = self._txn, self._txn.raw
        topic, value, key, headers, message = self._message(record, member)
        source = TopicPartition(
            message.original_topic, message.original_partition, message.original_offset + 1
        )
        async with self._txn_lock:
            await asyncio.to_thread(raw.begin_transaction)
            try:
                await producer.send(topic, value, key=key, headers=headers)
                await asyncio.to_thread(raw.send_offsets_to_transaction, [source], group, 30)
                await asyncio.to_thread(raw.commit_transaction, 30)
            except BaseException:
                await asyncio.to_thread(raw.abort_transaction, 30)
                raise

    def publish_later(self, record: DeadLetter, member: str) -> None:
        """Write the DlqMessage in the background; a failure is logged (best effort)."""
        if self._producer is None:
            return
        task = asyncio.get_running_loop().create_task(self._logged(record, member))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _logged(self, record: DeadLetter, member: str) -> None:
        try:
            await self.publish(record, member)
        except Exception:
            logger.exception("could not write the DlqMessage of %s", record.id)
