"""Provisioning DLQ topics on a real broker: create, then nothing, then only the difference."""

from __future__ import annotations

from typing import Any

import pytest

from redrive.transports.kafka.provision import provision
from redrive.transports.kafka.settings import DlqTopicSpec
from tests.kafka.conftest import Broker

pytestmark = pytest.mark.kafka


async def test_provision_twice_creates_then_reports_nothing(broker: Broker, names: Any) -> None:
    """The first run creates the topic with its configs; the second has nothing to change;
    a changed retention is applied alone, with incremental alter."""
    config = {"bootstrap.servers": broker.bootstrap}
    spec = DlqTopicSpec(
        name=names.of("rfq.dlq"), partitions=3, configs={"retention.ms": "604800000"}
    )
    (first,) = await provision(config, [spec])
    assert first.action == "created"
    assert "3 partitions" in first.detail
    (second,) = await provision(config, [spec])
    assert second.action == "unchanged"
    shorter = DlqTopicSpec(name=spec.name, partitions=3, configs={"retention.ms": "86400000"})
    (preview,) = await provision(config, [shorter], dry_run=True)
    assert preview.detail == "retention.ms 604800000 -> 86400000 (dry run)"
    (third,) = await provision(config, [shorter])
    assert third.action == "altered"
    assert third.detail == "retention.ms 604800000 -> 86400000"
    (fourth,) = await provision(config, [shorter])
    assert fourth.action == "unchanged"


async def test_provision_refuses_what_kafka_cannot_do(broker: Broker, names: Any) -> None:
    """Fewer partitions are refused with the reason; more partitions need CreatePartitions,
    which Tansu lacks (Apache Kafka has it), so there the refusal names the broker's error."""
    config = {"bootstrap.servers": broker.bootstrap}
    name = names.of("trade.dlq")
    await provision(config, [DlqTopicSpec(name=name, partitions=3)])
    (shrink,) = await provision(config, [DlqTopicSpec(name=name, partitions=1)])
    assert shrink.action == "refused"
    assert "cannot remove partitions" in shrink.detail
    (grow,) = await provision(config, [DlqTopicSpec(name=name, partitions=6)])
    assert grow.action == "refused"  # Tansu: no CreatePartitions (Kafka would add 3)
    assert "cannot add partitions" in grow.detail
