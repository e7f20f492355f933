"""Sorted listings on every backend: each sort orders by its key with the id as tie-breaker,
and keyset pages walked forward and back (re-asked with the cursors seen) visit every record
once, in order, whatever the ties and however many records have no sort key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from redrive.exceptions import InvalidInput
from redrive.models import DeadLetter, Status, utcnow
from redrive.stores.base import Filter, Store
from redrive.stores.paging import SORTS
from tests.factories import make_record


def records_with_ties() -> list[DeadLetter]:
    """17 records: dead ones sharing dead_at times and attempt counts, and scheduled ones
    that never died (no dead_at). Ids (creation order) disagree with both keys."""
    now = utcnow()
    made: list[DeadLetter] = []
    for i in range(12):
        record = make_record(attempts=1 + i % 3)
        # Three records per dead_at, newest ids dying first: id order is not dead order.
        made.append(record.replace(dead_at=now - timedelta(minutes=i // 3)))
    for i in range(5):
        made.append(make_record(status=Status.SCHEDULED, attempts=1 + i % 2))
    return made


def expected(records: list[DeadLetter], sort: str) -> list[str]:
    """The order a sort promises, computed here: key then id; no dead_at last."""
    name, descending = sort.lstrip("-"), sort.startswith("-")
    keys: dict[str, Callable[[DeadLetter], Any]] = {
        "created": lambda r: r.id,
        "attempts": lambda r: (r.attempts, r.id),
        "dead": lambda r: (r.dead_at, r.id),
    }
    keyed = [r for r in records if name != "dead" or r.dead_at is not None]
    rest = sorted((r for r in records if r not in keyed), key=lambda r: r.id, reverse=descending)
    ordered = sorted(keyed, key=keys[name], reverse=descending)
    return [r.id for r in ordered + rest]


def walk(store: Store, where: Filter, sort: str, size: int) -> list[tuple[str | None, list[str]]]:
    """Every page from the first, as (the cursor that asked for it, its ids)."""
    pages: list[tuple[str | None, list[str]]] = []
    cursor: str | None = None
    while True:
        page = store.find(where, limit=size, cursor=cursor, sort=sort)
        pages.append((cursor, [r.id for r in page.items]))
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


@pytest.mark.parametrize("sort", SORTS)
def test_pages_forward_and_back_under_each_sort(store: Store, sort: str) -> None:
    """Forward: every record once, in the sort's order, ties broken by id. Back: asking
    again with an earlier page's cursor (what "previous" and "first" do) gives that page."""
    records = records_with_ties()
    store.add(records)
    for size in (1, 4, 5):
        pages = walk(store, Filter(), sort, size)
        assert [i for _, ids in pages for i in ids] == expected(records, sort), (sort, size)
        assert all(len(ids) == size for _, ids in pages[:-1])
        for cursor, ids in reversed(pages):
            again = store.find(Filter(), limit=size, cursor=cursor, sort=sort)
            assert [r.id for r in again.items] == ids, (sort, size, cursor)


@pytest.mark.parametrize("sort", ["-dead", "dead", "-attempts", "attempts"])
@pytest.mark.parametrize(
    "statuses", [(Status.DEAD,), (Status.SCHEDULED,), (Status.DEAD, Status.RESOLVED)]
)
def test_a_sort_keeps_the_filter(store: Store, sort: str, statuses: tuple[Status, ...]) -> None:
    """A sort orders what the filter selects and nothing else, over one status (one index
    range) or several (one range per status, merged)."""
    records = records_with_ties()
    records += [make_record(status=Status.RESOLVED, attempts=2) for _ in range(3)]
    store.add(records)
    where = Filter(statuses=statuses, topic="orders.created")
    chosen = [r for r in records if r.status in statuses]
    ids = [i for _, page in walk(store, where, sort, 5) for i in page]
    assert ids == expected(chosen, sort)


@pytest.mark.parametrize(
    ("sort", "cursor"),
    [
        ("-dead", "not-a-time~x"),
        ("attempts", "three~x"),
        ("attempts", f"{2**70}~x"),  # bigger than any store's integers compare
        ("dead", "no-separator"),
        ("-x", None),
    ],
)
def test_a_bad_sort_or_cursor_is_refused(store: Store, sort: str, cursor: str | None) -> None:
    """An unknown sort, or a cursor made for another sort, is InvalidInput naming it."""
    store.add([make_record()])
    with pytest.raises(InvalidInput, match=r"^(cursor|sort): "):
        store.find(Filter(), limit=5, cursor=cursor, sort=sort)


def test_the_service_refuses_a_cursor_no_store_can_keep(store: Store) -> None:
    """A lone surrogate or a NUL in a cursor is InvalidInput from the service (the CLI and
    Python callers go through it), never a store error."""
    from redrive.service import DeadLetterQueue

    store.add([make_record()])
    for cursor in ("\ud800~x", "a\x00b"):
        with pytest.raises(InvalidInput, match=r"^cursor: "):
            DeadLetterQueue(store).list(cursor=cursor, sort="dead")
