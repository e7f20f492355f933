"""The Kafka transport: a consumer group with a dead-letter queue behind every handler.

``KafkaConsumer`` consumes topics with at-least-once commits, non-blocking retries and
``{topic}.dlq`` topics (``consumer``: lifecycle, poll loop, rebalances; ``dispatch``: each
partition's messages through the handlers; ``offsets``: what is safe to commit). The
modules ``provision`` (create and update the DLQ topics), ``importer`` (read existing DLQ
topics: redrive's, Kafka Connect's, Spring Kafka's), ``depth`` (DLQ depth and its gauge)
and ``republish`` (dead letters back to their original topics) serve the ``redrive kafka``
commands. Needs ``pip install "redrive[kafka]"`` (confluent-kafka). See docs/kafka.md.

.. versionadded:: 0.1
"""

from __future__ import annotations

from redrive.transports.kafka.consumer import KafkaConsumer
from redrive.transports.kafka.dlq import DlqMessage
from redrive.transports.kafka.envelope import UndecodableValue
from redrive.transports.kafka.settings import KafkaSettings

__all__ = ["DlqMessage", "KafkaConsumer", "KafkaSettings", "UndecodableValue"]
