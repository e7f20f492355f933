"""Provisioning of the DLQ topics: describe, diff, apply only the difference.

For each DLQ topic of the config: a missing topic is created with its partitions,
replication and configs; an existing one has its configs compared with what the broker
describes, and only the keys that differ are set, with ``IncrementalAlterConfigs`` (the
legacy ``AlterConfigs`` replaces every override of a topic, so it is never used). More
partitions are added with ``CreatePartitions``. What Kafka cannot do is refused with a
reason: fewer partitions (Kafka never shrinks a topic) and another replication factor
(that needs a partition reassignment). A second run finds nothing to change.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from redrive.exceptions import TransportError
from redrive.transports.kafka.client import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    KafkaException,
    NewPartitions,
    NewTopic,
    ResourceType,
    admin_call,
    admin_config,
)
from redrive.transports.kafka.settings import DlqTopicSpec

Action = Literal["created", "altered", "unchanged", "refused", "failed"]


@dataclasses.dataclass(frozen=True, slots=True)
class TopicChange:
    """What provisioning did (or would do) to one topic."""

    topic: str
    action: Action
    detail: str = ""

    def describe(self) -> str:
        """One line for the operator."""
        return f"{self.action} {self.topic}" + (f": {self.detail}" if self.detail else "")


async def provision(
    config: Mapping[str, Any], specs: Sequence[DlqTopicSpec], *, dry_run: bool = False
) -> list[TopicChange]:
    """Make the broker's DLQ topics match ``specs``; return what changed, topic by topic.

    :param config: librdkafka settings (``bootstrap.servers`` at least).
    :param dry_run: describe and diff only.
    """
    admin = AdminClient(admin_config(config))
    metadata = await asyncio.to_thread(admin.list_topics, timeout=10)
    existing = {name: len(topic.partitions) for name, topic in metadata.topics.items()}
    changes = []
    for spec in specs:
        try:
            if spec.name in existing:
                change = await _update(admin, spec, existing[spec.name], dry_run)
            else:
                change = await _create(admin, spec, dry_run)
        except (KafkaException, TransportError) as exc:
            change = TopicChange(spec.name, "failed", _reason(exc))
        changes.append(change)
    return changes


async def _create(admin: AdminClient, spec: DlqTopicSpec, dry_run: bool) -> TopicChange:
    detail = f"{spec.partitions} partitions, replication {spec.replication}" + "".join(
        f", {k}={v}" for k, v in sorted(spec.configs.items())
    )
    if not dry_run:
        topic = NewTopic(spec.name, spec.partitions, spec.replication, config=dict(spec.configs))
        (future,) = admin.create_topics([topic], request_timeout=15).values()
        await admin_call(future)
    return TopicChange(spec.name, "created", detail)


async def _update(
    admin: AdminClient, spec: DlqTopicSpec, partitions: int, dry_run: bool
) -> TopicChange:
    if spec.partitions < partitions:
        return TopicChange(
            spec.name,
            "refused",
            f"it has {partitions} partitions and the config asks for {spec.partitions}: "
            "Kafka cannot remove partitions (create a new topic and move to it)",
        )
    current = await _configs(admin, spec.name)
    differ = {k: v for k, v in spec.configs.items() if current.get(k) != v}
    notes = [f"{k} {current.get(k, '(unset)')} -> {v}" for k, v in sorted(differ.items())]
    if spec.partitions > partitions:
        notes.insert(0, f"partitions {partitions} -> {spec.partitions}")
    if not notes:
        return TopicChange(spec.name, "unchanged")
    if dry_run:
        return TopicChange(spec.name, "altered", "; ".join(notes) + " (dry run)")
    if differ:
        entries = [
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
            for k, v in sorted(differ.items())
        ]
        resource = ConfigResource(ResourceType.TOPIC, spec.name, incremental_configs=entries)
        (future,) = admin.incremental_alter_configs([resource]).values()
        await admin_call(future)
    if spec.partitions > partitions:
        try:
            new = NewPartitions(spec.name, spec.partitions)
            (future,) = admin.create_partitions([new], request_timeout=15).values()
            await admin_call(future)
        except KafkaException as exc:
            done = f"; {'; '.join(notes[1:])}" if differ else ""
            return TopicChange(
                spec.name,
                "refused",
                f"the broker cannot add partitions ({_reason(exc)}){done}",
            )
    return TopicChange(spec.name, "altered", "; ".join(notes))


async def _configs(admin: AdminClient, topic: str) -> dict[str, str]:
    """The topic's config values as the broker describes them (Apache Kafka lists every
    key; some brokers list only those set explicitly)."""
    (future,) = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]).values()
    entries = await admin_call(future)
    return {name: entry.value for name, entry in entries.items() if entry.value is not None}


def _reason(exc: BaseException) -> str:
    error = exc.args[0] if exc.args else exc
    text = getattr(error, "str", None)
    return str(text() if callable(text) else error)
