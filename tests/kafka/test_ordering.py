"""ordering="key": a key's later messages wait behind its earlier one's retry."""

from __future__ import annotations

from typing import Any

import pytest

from redrive import RetryAfter, RetryPolicy
from redrive.models import Event, Status
from redrive.service import Filter
from redrive.stores.sqlite import SQLiteStore
from tests.helpers import eventually
from tests.kafka.conftest import Broker
from tests.kafka.support import committed, create_topic, produce
from tests.kafka.test_consumer import consumer_for

pytestmark = pytest.mark.kafka


async def test_key_order_parks_later_messages_and_lets_other_keys_flow(
    broker: Broker, sqlite_store: SQLiteStore, names: Any
) -> None:
    """Key A's first message waits for a retry in the store; A's second message is parked
    behind it, key B's runs at once; once A's retry succeeds, A's second message runs."""
    create_topic(broker.bootstrap, names.topic)
    policy = RetryPolicy(max_attempts=3, initial_delay=0.05, jitter="none")
    consumer = consumer_for(
        broker, sqlite_store, names, policy=policy, ordering="key", in_place=0.5
    )
    runs: list[str] = []

    @consumer.handler(names.topic)
    async def handle(event: Event) -> None:
        runs.append(event.payload["m"])
        if event.payload["m"] == "a1" and runs.count("a1") == 1:
            raise RetryAfter(2.0)

    produce(broker.bootstrap, names.topic, [{"m": "a1"}], key="A")
    produce(broker.bootstrap, names.topic, [{"m": "a2"}], key="A")
    produce(broker.bootstrap, names.topic, [{"m": "b1"}], key="B")
    async with consumer:
        await eventually(lambda: committed(broker.bootstrap, names.group, names.topic) == 3)
        assert runs == ["a1", "b1"]  # a2 is parked, b1 flowed
        parked = sqlite_store.find(Filter(statuses=(Status.SCHEDULED,)), limit=10).items
        assert sorted(r.payload["m"] for r in parked) == ["a1", "a2"]
        await eventually(lambda: runs == ["a1", "b1", "a1", "a2"])
        await eventually(lambda: sqlite_store.count(Filter(statuses=(Status.RESOLVED,))) == 2)
    assert sqlite_store.meta_list("kafka-order") == {}
