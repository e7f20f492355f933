"""Sorted keyset pages of dead letters: the sorts a listing offers, the cursor that carries a
page's last sort key and id, and the SQL conditions that continue after it.

A sort is a name, ``-`` in front for descending: ``-created`` (newest first, the default),
``created``, ``-dead``, ``dead``, ``-attempts``, ``attempts``. Ids are UUIDv7 made when a
record is created, so ``created`` is id order (no other column, no other index). The other
sorts order by their column with the id as tie-breaker, and a cursor carries both
(``<key>~<id>``), so every page is an index range scan however deep it is. Records with no
``dead_at`` (never dead: scheduled, retrying) come after all the others in both directions,
as a second segment in id order; their cursors are ``~<id>``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from redrive.exceptions import InvalidInput
from redrive.models import DeadLetter, format_time, parse_time

SORTS = ("-created", "created", "-dead", "dead", "-attempts", "attempts")
"""The sorts a listing offers; ``-`` in front means descending."""

DEFAULT_SORT = "-created"
"""Newest first."""

_SEP = "~"


@dataclasses.dataclass(frozen=True, slots=True)
class Segment:
    """One ordered range of a sorted listing: extra WHERE text (starting with `` AND``),
    its parameters and the ORDER BY; ``column`` is the sort key's column before the id
    (None: the id alone), and ``descending`` its direction."""

    condition: str
    params: tuple[Any, ...]
    order: str
    column: str | None = None
    descending: bool = True


def check_sort(sort: str) -> str:
    """``sort`` if it is one of ``SORTS``, else ``InvalidInput`` naming the choices."""
    if sort not in SORTS:
        raise InvalidInput(f"sort: expected one of {', '.join(SORTS)}, got {sort!r}")
    return sort


def _split(sort: str) -> tuple[str, bool]:
    check_sort(sort)
    return sort.lstrip("-"), sort.startswith("-")


def cursor_of(record: DeadLetter, sort: str = DEFAULT_SORT) -> str:
    """The cursor of the page after ``record`` in a listing sorted by ``sort``."""
    name, _ = _split(sort)
    if name == "created":
        return record.id  # the id alone: the cursor every listing had before sorts
    if name == "attempts":
        return f"{record.attempts}{_SEP}{record.id}"
    return f"{format_time(record.dead_at) or ''}{_SEP}{record.id}"


def segments(sort: str, cursor: str | None, param: str, encode_time: Any) -> list[Segment]:
    """The ordered ranges that make up the listing after ``cursor`` (all of it for None).

    ``param`` is the dialect's placeholder and ``encode_time`` how it stores a time."""
    name, descending = _split(sort)
    way, than = ("DESC", "<") if descending else ("ASC", ">")
    if name == "created":
        if cursor is None:
            return [Segment("", (), f"id {way}", descending=descending)]
        return [Segment(f" AND id {than} {param}", (cursor,), f"id {way}", descending=descending)]
    column = "attempts" if name == "attempts" else "dead_at"
    keyed = functools.partial(
        Segment, order=f"{column} {way}, id {way}", column=column, descending=descending
    )
    by_id = functools.partial(Segment, order=f"id {way}", descending=descending)
    key, after = _parse(name, sort, cursor)
    after_key = f" AND ({column}, id) {than} ({param}, {param})"
    if column == "attempts":
        return [keyed("", ())] if cursor is None else [keyed(after_key, (key, after))]
    never_dead = f" AND {column} IS NULL"
    if cursor is None:
        return [keyed(f" AND {column} IS NOT NULL", ()), by_id(never_dead, ())]
    if key is None:  # inside the second segment already
        return [by_id(f"{never_dead} AND id {than} {param}", (after,))]
    return [keyed(after_key, (encode_time(key), after)), by_id(never_dead, ())]


def _parse(name: str, sort: str, cursor: str | None) -> tuple[Any, str]:
    """(sort key, id) of a cursor; ``InvalidInput`` for one not made for this sort."""
    if cursor is None:
        return None, ""
    key, sep, after = cursor.rpartition(_SEP)
    problem = InvalidInput(
        f"cursor: {cursor!r} is not a cursor of a listing sorted by {sort} "
        "(pass the next_cursor of a page with the same sort)"
    )
    if not sep or not after:
        raise problem
    try:
        if name == "attempts":
            attempts = int(key)
            if not 0 <= attempts < 2**31:  # what every store's INTEGER column can compare
                raise ValueError(key)
            return attempts, after
        return (parse_time(key) if key else None), after
    except (ValueError, OverflowError):
        raise problem from None
