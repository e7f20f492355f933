"""DLQ depth: how many records a ``.dlq`` topic holds (high minus low watermark, summed over
its partitions), as numbers, a threshold check and a Prometheus gauge.

Depth counts what the topic retains, consumed or not: it is the backlog an operator
sees in Kafka tooling. On Tansu (the test broker) the high watermark is wrong after a
multi-record batch, so depth is exact only for topics written one record per request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from redrive.transports.kafka.client import Consumer, TopicPartition, consumer_config
from redrive.transports.kafka.settings import DlqTopicSpec


@dataclasses.dataclass(frozen=True, slots=True)
class Depth:
    """One DLQ topic's depth and where it stands against its thresholds."""

    topic: str
    depth: int | None  # None: the topic does not exist
    level: str  # ok, warn, critical, missing

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape."""
        return {"topic": self.topic, "depth": self.depth, "level": self.level}


def dlq_depth(config: Mapping[str, Any], topics: Sequence[str]) -> dict[str, int | None]:
    """Depth per topic (None for a topic that does not exist)."""
    consumer = Consumer(consumer_config({**config, "group.id": "redrive-depth"}))
    try:
        depths: dict[str, int | None] = {}
        for topic in topics:
            info = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if info is None or info.error is not None or not info.partitions:
                depths[topic] = None
                continue
            total = 0
            for partition in info.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
                total += max(high - low, 0)
            depths[topic] = total
        return depths
    finally:
        consumer.close()


def check(config: Mapping[str, Any], specs: Sequence[DlqTopicSpec]) -> list[Depth]:
    """Each DLQ topic's depth against its ``warn`` and ``critical`` thresholds."""
    depths = dlq_depth(config, [spec.name for spec in specs])
    return [_level(spec, depths[spec.name]) for spec in specs]


def _level(spec: DlqTopicSpec, depth: int | None) -> Depth:
    if depth is None:
        return Depth(spec.name, None, "missing")
    if spec.critical is not None and depth >= spec.critical:
        return Depth(spec.name, depth, "critical")
    if spec.warn is not None and depth >= spec.warn:
        return Depth(spec.name, depth, "warn")
    return Depth(spec.name, depth, "ok")


class DlqDepthCollector:
    """A Prometheus collector of ``redrive_kafka_dlq_depth{topic}`` (needs
    ``redrive[metrics]``): ``REGISTRY.register(DlqDepthCollector(config, topics))``.
    Each scrape reads the watermarks."""

    def __init__(self, config: Mapping[str, Any], topics: Sequence[str]) -> None:
        self._config = dict(config)
        self._topics = list(topics)

    def collect(self) -> Iterable[Any]:
        """The gauge, one sample per existing topic."""
        from prometheus_client.metrics_core import GaugeMetricFamily

        gauge = GaugeMetricFamily(
            "redrive_kafka_dlq_depth", "Records held by a Kafka DLQ topic.", labels=["topic"]
        )
        for topic, depth in dlq_depth(self._config, self._topics).items():
            if depth is not None:
                gauge.add_metric([topic], depth)
        yield gauge
