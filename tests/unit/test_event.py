"""Event: its hand-written __init__ (faster than the generated one) keeps the dataclass's
fields, defaults, frozenness and JSON shape."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime

import pytest

from redrive.models import Event, build_event


def full_event() -> Event:
    return Event(
        topic="orders",
        payload={"n": 1},
        id="e-1",
        key="k",
        headers={"h": "v"},
        correlation_id="c",
        source="s",
        tenant_id="t",
        occurred_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


def test_init_sets_every_field() -> None:
    """Each field of the dataclass gets the value passed for it (none left unset)."""
    event = full_event()
    expected = {
        "topic": "orders",
        "payload": {"n": 1},
        "id": "e-1",
        "key": "k",
        "headers": {"h": "v"},
        "correlation_id": "c",
        "source": "s",
        "tenant_id": "t",
        "occurred_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    }
    assert {f.name: getattr(event, f.name) for f in dataclasses.fields(Event)} == expected


def test_defaults_fill_themselves_in() -> None:
    """id and occurred_at are new per event; headers is a fresh dict each time."""
    first, second = Event(topic="a"), Event(topic="a")
    assert first.id != second.id
    assert first.occurred_at.tzinfo is UTC
    assert first.headers == {}
    assert first.headers is not second.headers
    assert (first.payload, first.key, first.source) == (None, None, None)


def test_frozen_replace_pickle_and_json_round_trip() -> None:
    event = full_event()
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.key = "other"  # type: ignore[misc]
    changed = dataclasses.replace(event, key="other")
    assert (changed.key, changed.id, changed.topic) == ("other", "e-1", "orders")
    assert pickle.loads(pickle.dumps(event)) == event
    assert Event.from_dict(event.to_dict()) == event


def test_build_event_is_the_same_event() -> None:
    """The positional hot-path builder makes an Event equal to the keyword one."""
    event = full_event()
    built = build_event(
        event.topic,
        event.payload,
        event.id,
        event.key,
        event.headers,
        event.correlation_id,
        event.source,
        event.tenant_id,
        event.occurred_at,
    )
    assert type(built) is Event
    assert built == event
    assert built.to_dict() == event.to_dict()
