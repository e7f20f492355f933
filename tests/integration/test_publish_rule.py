"""One model rule for every source: ``publish`` takes plain JSON payloads and string
headers, or refuses them clearly; and an archive deletes only what reads back."""

from __future__ import annotations

import datetime
import decimal
import gzip
from pathlib import Path
from typing import Any

import pytest

from redrive import DeadLetterQueue, EventBus
from redrive._json import NotJSON
from redrive.service import FormatError
from redrive.stores.base import Store
from tests.factories import make_record

NOT_JSON = [
    pytest.param({"at": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)}, id="datetime"),
    pytest.param({"amount": decimal.Decimal("1.10")}, id="Decimal"),
    pytest.param({"tags": {"a", "b"}}, id="set"),
    pytest.param({"blob": b"\x00\x01"}, id="bytes"),
    pytest.param({"pair": (1, 2)}, id="tuple"),
    pytest.param({1: "int key"}, id="int-key"),
    pytest.param({"n": float("nan")}, id="NaN"),
    pytest.param({"n": float("inf")}, id="Infinity"),
]


@pytest.mark.parametrize("payload", NOT_JSON)
async def test_publish_refuses_payloads_that_are_not_json(
    sqlite_store: Store, payload: Any
) -> None:
    """A payload a replay would not get back unchanged is refused before any handler runs."""
    bus = EventBus(sqlite_store)
    ran: list[object] = []

    @bus.handler("orders.created")
    async def fails(event: object) -> None:
        ran.append(event)
        raise RuntimeError("boom")

    with pytest.raises(NotJSON, match=r"the payload of 'orders\.created'") as info:
        await bus.publish("orders.created", payload)
    assert "\n" not in str(info.value)
    assert ran == []
    assert DeadLetterQueue(sqlite_store).count(status=None) == 0
    await bus.stop()


async def test_publish_refuses_header_values_that_are_not_strings(sqlite_store: Store) -> None:
    """``headers={"attempt": 1}`` is refused (it could be archived but never imported)."""
    bus = EventBus(sqlite_store)

    @bus.handler("orders.created")
    async def fails(event: object) -> None:
        raise RuntimeError("boom")

    headers: Any = {"attempt": 1}  # the wrong type is the point
    with pytest.raises(NotJSON, match=r"headers of 'orders\.created' must map strings"):
        await bus.publish("orders.created", {"n": 1}, headers=headers)
    assert DeadLetterQueue(sqlite_store).count(status=None) == 0
    await bus.stop()


async def test_the_outbox_and_the_bus_share_the_rule() -> None:
    """``Outbox.add`` runs the very check ``publish`` runs."""
    import inspect

    from redrive import _json, bus
    from redrive.outbox import add

    # Both modules call the one function (not a copy of it).
    assert "check_event(" in inspect.getsource(bus) and "check_event(" in inspect.getsource(add)
    assert vars(add)["check_event"] is vars(bus)["check_event"] is _json.check_event


@pytest.mark.parametrize("name", ["archive.jsonl", "archive.jsonl.gz"])
def test_archive_keeps_records_that_would_not_read_back(
    sqlite_store: Store, tmp_path: Path, name: str
) -> None:
    """A record another writer stored with a number header is not deleted: the archive
    checks each line with the importer's validation first, and stops with a clear error."""
    good = make_record()
    bad = make_record()
    bad = bad.replace(event=bad.event.__class__(**{**_fields(bad.event), "headers": {"n": 1}}))
    sqlite_store.add([good, bad])
    dlq = DeadLetterQueue(sqlite_store)
    path = tmp_path / name
    with pytest.raises(FormatError, match=f"{bad.id}.*headers") as info:
        dlq.archive(path, batch=10)
    assert "stay in the store" in str(info.value)
    assert dlq.count(status=None) == 2
    if path.exists():
        text = gzip.decompress(path.read_bytes()).decode() if name.endswith(".gz") else ""
        assert bad.id not in (text or path.read_text())


def _fields(event: Any) -> dict[str, Any]:
    return {name: getattr(event, name) for name in event.__slots__}
