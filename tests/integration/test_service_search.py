"""The service's search over masked fields pages like any listing, and refusals come
before the first byte of an export."""

from __future__ import annotations

import pytest

from redrive.exceptions import InvalidInput
from redrive.redact import Redactor
from redrive.service import DeadLetterQueue
from redrive.stores.base import Filter, Store
from tests.factories import make_record
from tests.leaky import leaky_record


def test_masked_search_pages_through_every_match(sqlite_store: Store) -> None:
    """25 matches among 60 records come back in pages of 10 with cursors, newest first,
    and the record whose message only matches inside its secret is never among them."""
    sqlite_store.add([make_record(error_message=f"timeout {i}") for i in range(25)])
    sqlite_store.add([make_record(error_message="refused") for _ in range(34)])
    sqlite_store.add([leaky_record()])  # "bad password '<secret>'": 'hunter' only in it
    dlq = DeadLetterQueue(sqlite_store, redactor=Redactor(["password"]))
    seen, cursor = [], None
    while True:
        page = dlq.list(Filter(search="timeout"), limit=10, cursor=cursor)
        seen += [record.error_message for record in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == 25 and len(set(seen)) == 25
    assert dlq.list(Filter(search="hunter2"), limit=10).items == []
    assert dlq.count(Filter(search="hunter2")) == 0
    assert dlq.count(Filter(search="timeout")) == 25


def test_export_refuses_before_the_first_byte(sqlite_store: Store) -> None:
    """A filter no store can run is refused when the export is asked for, not mid-stream."""
    sqlite_store.add([make_record()])
    dlq = DeadLetterQueue(sqlite_store)
    with pytest.raises(InvalidInput, match="NUL"):
        dlq.export_stream(where=Filter(topic="a\x00b"))
    assert dlq.audit() == []
