"""Consumer group behaviour: a rebalance while a handler runs commits nothing past it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from redrive.models import Event
from redrive.stores.sqlite import SQLiteStore
from tests.helpers import eventually
from tests.kafka.conftest import CLIENT, Broker
from tests.kafka.support import committed, create_topic, produce
from tests.kafka.test_consumer import consumer_for

pytestmark = pytest.mark.kafka


async def test_rebalance_during_a_long_handler_commits_nothing_past_it(
    broker: Broker, sqlite_store: SQLiteStore, names: Any
) -> None:
    """A second member joins while the first one's handler is stuck on offset 0: the
    revocation waits its grace, then commits nothing; once the handler is released, the
    messages are processed and committed."""
    create_topic(broker.bootstrap, names.topic)
    release = asyncio.Event()
    runs: list[tuple[str, int]] = []

    def member(name: str) -> Any:
        consumer = consumer_for(broker, sqlite_store, names, revoke_grace=1.0)

        @consumer.handler(names.topic, name="slow")
        async def slow(event: Event) -> None:
            runs.append((name, event.payload["n"]))
            if event.payload["n"] == 0:
                await release.wait()

        return consumer

    produce(broker.bootstrap, names.topic, [{"n": n} for n in range(3)])
    first, second = member("first"), member("second")
    async with first:
        await eventually(lambda: runs == [("first", 0)])
        async with second:
            # Both members were in the rebalance once the partition runs somewhere again
            # (offset 0 redelivered) or the first member's grace has passed.
            await eventually(lambda: len(runs) >= 2 or second.member)
            assert committed(broker.bootstrap, names.group, names.topic) < 1
            release.set()
            await eventually(lambda: committed(broker.bootstrap, names.group, names.topic) == 3)
    assert {n for _, n in runs} == {0, 1, 2}
    assert [n for _, n in runs].count(0) >= 2  # redelivered after the rebalance: not committed


async def test_two_members_share_the_partitions(
    broker: Broker, sqlite_store: SQLiteStore, names: Any
) -> None:
    """Two members of a group each get a partition of a two-partition topic, and between
    them every message is processed and committed."""
    create_topic(broker.bootstrap, names.topic, partitions=2)
    seen: dict[str, set[int]] = {"a": set(), "b": set()}

    def member(name: str) -> Any:
        consumer = consumer_for(broker, sqlite_store, names)

        @consumer.handler(names.topic, name="count")
        async def count(event: Event) -> None:
            seen[name].add(event.payload["n"])

        return consumer

    a, b = member("a"), member("b")
    async with a, b:
        await eventually(lambda: a.member and b.member)
        for n in range(6):
            produce(broker.bootstrap, names.topic, [{"n": n}], partition=n % 2)
        await eventually(lambda: seen["a"] | seen["b"] == set(range(6)))
        await eventually(
            lambda: (
                [committed(broker.bootstrap, names.group, names.topic, p) for p in (0, 1)] == [3, 3]
            )
        )
    assert seen["a"] and seen["b"]  # each member handled a partition


async def test_a_handler_longer_than_max_poll_interval_keeps_the_membership(
    broker: Broker, sqlite_store: SQLiteStore, names: Any
) -> None:
    """A handler that works longer than max.poll.interval.ms does not cost the member its
    partitions: polling goes on while it runs, so its offset commits and nothing is
    redelivered."""
    create_topic(broker.bootstrap, names.topic)
    client = {**CLIENT, "max.poll.interval.ms": 7000}
    consumer = consumer_for(broker, sqlite_store, names, client=client)
    seen: list[int] = []

    @consumer.handler(names.topic)
    async def slow(event: Event) -> None:
        seen.append(event.payload["n"])
        if event.payload["n"] == 0:
            await asyncio.sleep(9)  # the handler's own work, longer than the interval

    produce(broker.bootstrap, names.topic, [{"n": 0}, {"n": 1}])
    async with consumer:
        await eventually(lambda: seen == [0])
        member = consumer.member
        await eventually(
            lambda: committed(broker.bootstrap, names.group, names.topic) == 2, timeout=20
        )
        assert consumer.member == member
    assert seen == [0, 1]
