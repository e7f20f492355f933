"""``EventBus.publish`` refuses an event it could not store as given, before any handler
runs: an empty topic, a non-string key, a mapping that is not a dict, a payload nested
deeper than the interpreter's stack."""

from __future__ import annotations

import types
from typing import Any

import pytest

from redrive import Event, EventBus
from redrive.exceptions import InvalidInput
from redrive.testing import MemoryStore


@pytest.fixture
def ran() -> list[Event]:
    """The events the bus's handler ran."""
    return []


@pytest.fixture
def bus(memory_store: MemoryStore, ran: list[Event]) -> EventBus:
    """A bus whose one handler notes what it ran."""
    bus = EventBus(memory_store)

    @bus.handler("orders.created")
    def note(event: Event) -> None:
        ran.append(event)

    return bus


async def test_an_empty_topic_is_refused(bus: EventBus, ran: list[Event]) -> None:
    """An event needs a topic to be routed and replayed."""
    with pytest.raises(InvalidInput, match="an event needs a non-empty topic, got ''"):
        await bus.publish("", {"n": 1})


async def test_a_key_that_is_not_a_string_is_refused(bus: EventBus, ran: list[Event]) -> None:
    """``key=5`` would come back as "5": refused, naming the field and the topic."""
    with pytest.raises(
        InvalidInput, match=r"key of 'orders\.created' must be a string or None, got 5"
    ):
        await bus.publish("orders.created", {"n": 1}, key=5)  # type: ignore[arg-type]
    assert ran == []


async def test_a_read_only_mapping_is_refused_with_what_to_use(
    bus: EventBus, ran: list[Event]
) -> None:
    """A mappingproxy is a Mapping but not JSON's dict: the message says to use a dict."""
    payload = types.MappingProxyType({"n": 1})
    with pytest.raises(InvalidInput, match="is a mappingproxy; use a dict"):
        await bus.publish("orders.created", payload)
    assert ran == []


async def test_a_payload_deeper_than_the_stack_is_refused_not_a_crash(
    bus: EventBus, ran: list[Event]
) -> None:
    """A payload nested past the recursion limit gets the walk that names the problem
    (here a set at the bottom), not a RecursionError (found by this test)."""
    payload: Any = [{1, 2}]
    for _ in range(5_000):
        payload = [payload]
    with pytest.raises(InvalidInput, match="set"):
        await bus.publish("orders.created", payload)
    assert ran == []


@pytest.mark.parametrize("shape", ["list", "dict"])
async def test_a_payload_that_contains_itself_is_refused(
    bus: EventBus, ran: list[Event], shape: str
) -> None:
    """A value that contains itself is refused naming where, not walked for ever (the walk
    used to loop on it: publish never returned)."""
    payload: Any
    if shape == "list":
        payload = [1, []]
        payload[1].append(payload)
        where = r"\[1\]\[0\]"
    else:
        payload = {"order": {"lines": [{}]}}
        payload["order"]["lines"][0]["back"] = payload
        where = r"order\.lines\[0\]\.back"
    with pytest.raises(InvalidInput, match=where + " contains itself"):
        await bus.publish("orders.created", payload)
    assert ran == []


async def test_a_value_shared_twice_is_not_a_cycle(bus: EventBus, ran: list[Event]) -> None:
    """The same list under two keys is plain JSON (it is written twice), not a cycle."""
    shared: Any = [{1, 2}]  # not JSON itself, so the payload takes the walk
    with pytest.raises(InvalidInput, match=r"(a|b)\[0\] is a set"):
        await bus.publish("orders.created", {"a": shared, "b": shared})
    lines = [1, 2]
    await bus.publish("orders.created", {"a": lines, "b": [lines, lines]})
    assert [event.payload for event in ran] == [{"a": [1, 2], "b": [[1, 2], [1, 2]]}]
