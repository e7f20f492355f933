"""Orientation on the dead-letters page: known values for the filters, a case-insensitive
error type, sortable columns, first/previous/next paging with a position, and the jump box."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from redrive.stores.base import DEFAULT_SORT, SORTS, Filter

if TYPE_CHECKING:
    from redrive.service import DeadLetterQueue

KNOWN_GROUPS = 500
"""Groups read to learn the known handlers and error types (the biggest ones)."""


def known_values(service: DeadLetterQueue) -> dict[str, list[str]]:
    """The topics, handlers and error types the store has, for the filters' datalists."""
    topics = sorted(service.stats().counts)
    groups = service.store.groups(Filter(), limit=KNOWN_GROUPS)
    return {
        "topics": topics,
        "handlers": sorted({g.handler for g in groups}),
        "error_types": sorted({g.error_type for g in groups}),
    }


def match_case(value: str | None, known: list[str]) -> str | None:
    """``attributeerror`` -> ``AttributeError`` when the store knows that error type (the
    store matches exactly; operators type names in any case)."""
    if not value:
        return value
    if value in known:
        return value
    matches = [name for name in known if name.lower() == value.strip().lower()]
    return matches[0] if len(matches) == 1 else value


SORT_LABELS = {
    "-created": "newest first",
    "created": "oldest first",
    "-dead": "latest death first",
    "dead": "earliest death first",
    "-attempts": "most attempts first",
    "attempts": "fewest attempts first",
}
"""What each sort is called in the sort menu (the phone's way to sort: no headers there)."""


def sorting(query: str, sort: str) -> dict[str, Any]:
    """The sort state of the list page: ``listing`` (the filters plus the sort, for the
    pager and the way back from a bulk action), and per column (``created``, ``dead``,
    ``attempts``) the link a header goes to and its ``aria-sort``. A header sorts its
    column descending first; a second click reverses it. The filters always ride along."""
    extra = "" if sort == DEFAULT_SORT or sort not in SORTS else f"sort={quote(sort)}"
    joined = "&".join(part for part in (query, extra) if part)
    columns: dict[str, dict[str, str]] = {}
    for name in ("created", "dead", "attempts"):
        target = name if sort == f"-{name}" else f"-{name}"
        state = {f"-{name}": "descending", name: "ascending"}.get(sort, "none")
        link = "&".join(p for p in (query, "" if target == DEFAULT_SORT else f"sort={target}") if p)
        columns[name] = {"href": link, "aria": state}
    return {"listing": joined, "columns": columns, "current": sort, "labels": SORT_LABELS}


TRAIL_BUDGET = 10_000
"""Characters of cursors a page link carries for Previous (the route accepts 12,000)."""


def pager(
    cursor: str | None,
    next_cursor: str | None,
    trail: str,
    total: int,
    size: int,
    number: int | None = None,
) -> dict[str, Any]:
    """First / previous / next links and the position: page N of M.

    The cursors of the pages before this one ride along in ``trail`` so that Previous shows
    exactly the page seen before; the page number rides along too. Past ``TRAIL_BUDGET``
    the oldest cursors are dropped: Next keeps working at any depth, and Previous at the
    oldest remembered page goes to the first page."""
    seen = [c for c in trail.split(",") if c] if cursor else []
    number = number if number and cursor else len(seen) + (2 if cursor else 1)
    previous = None
    if cursor:
        previous = {"cursor": seen[-1] if seen else "", "trail": ",".join(seen[:-1])}
        previous["page"] = str(number - 1 if seen else 1)
    forward = None
    if next_cursor:
        kept = [*seen, cursor] if cursor else []
        while kept and sum(len(c) + 1 for c in kept) > TRAIL_BUDGET:
            kept.pop(0)
        forward = {"cursor": next_cursor, "trail": ",".join(kept), "page": str(number + 1)}
    return {
        "number": number,
        "of": max(1, math.ceil(total / size)),
        "previous": previous,
        "next": forward,
        "first": bool(cursor),
    }


def find(service: DeadLetterQueue, text: str) -> tuple[str, str] | None:
    """Where the jump box goes: ``("record", id)``, or a list filter ``(field, value)``
    when several records share an event id, key or correlation id."""
    if not text:
        return None
    if service.count(Filter(ids=(text,))):
        return ("record", text)
    choices = {
        "event_id": Filter(event_id=text),
        "key": Filter(key=text),
        "correlation_id": Filter(correlation_id=text),
    }
    for field, where in choices.items():
        found = service.list(where, limit=2).items
        if len(found) == 1:
            return ("record", found[0].id)
        if found:
            return (field, text)
    return None
