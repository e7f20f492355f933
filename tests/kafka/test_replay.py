"""Replay both ways: through the consumer's store scheduler, and republished to the topic."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from redrive import NonRetriableError
from redrive.config import from_mapping
from redrive.models import Event, Status
from redrive.service import DeadLetterQueue, Filter
from redrive.stores.sqlite import SQLiteStore
from redrive.transports.kafka.republish import republish
from tests.helpers import eventually
from tests.kafka.conftest import Broker
from tests.kafka.support import create_topic, produce, read
from tests.kafka.test_consumer import consumer_for

pytestmark = pytest.mark.kafka


async def test_replay_runs_only_the_failed_handler_and_republish_sends_the_original(
    broker: Broker, sqlite_store: SQLiteStore, names: Any
) -> None:
    """An operator's replay runs only the handler that failed, in the consumer's process; a
    republish produces the original key, value and headers back to the topic with the
    replay headers, and every handler of the topic sees it."""
    create_topic(broker.bootstrap, names.topic)
    consumer = consumer_for(broker, sqlite_store, names, dlq=False)
    runs: dict[str, list[Any]] = {"audit": [], "ship": []}

    @consumer.handler(names.topic, name="audit")
    async def audit(event: Event) -> None:
        runs["audit"].append(event.headers.get("redrive-replay-of"))

    @consumer.handler(names.topic, name="ship")
    async def ship(event: Event) -> None:
        runs["ship"].append(event.headers.get("redrive-replay-of"))
        if len(runs["ship"]) == 1:
            raise NonRetriableError("warehouse closed")

    produce(broker.bootstrap, names.topic, [{"order": 9}], key="o-9", headers=[("trace", b"t1")])
    async with consumer:
        record = (await eventually(lambda: sqlite_store.find(Filter(), limit=5).items))[0]
        assert record.handler == "ship"
        DeadLetterQueue(sqlite_store, actor="ops").retry([record.id])
        await eventually(
            lambda: (
                (now := sqlite_store.get(record.id)) is not None and now.status == Status.RESOLVED
            )
        )
        assert runs == {"audit": [None], "ship": [None, None]}

        settings = from_mapping({"kafka": {"bootstrap_servers": broker.bootstrap}})
        assert await republish([record], settings, actor="ops") == 1
        await eventually(lambda: len(runs["audit"]) == 2 and len(runs["ship"]) == 3)
    assert runs["audit"][1] == runs["ship"][2] == record.id
    first, again = await asyncio.to_thread(read, broker.bootstrap, names.topic, 2)
    assert again.key() == first.key() == b"o-9"
    assert json.loads(again.value() or b"") == {"order": 9}
    headers = dict(again.headers() or [])
    assert headers["trace"] == b"t1"
    assert headers["redrive-replay-of"] == record.id.encode()
    assert headers["retry-count"] == b"1"
