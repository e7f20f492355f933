"""What a bulk operation selects and what it did: filters built from keyword criteria (and
back to JSON for the audit trail), snapshots that bound a selection to the records that exist
now, batched iteration over a selection, the statuses each change starts from, and ``Result``.

These are functions of a ``Store`` and a ``Clock``, so replay and the file operations use them
without the service (no module here imports ``DeadLetterQueue``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from redrive._batch import BATCH
from redrive._clock import Clock
from redrive.models import JSON, DeadLetter, Status
from redrive.stores.base import Filter, Store

__all__ = [
    "BATCH",
    "IDS_KEPT",
    "REPLAYABLE",
    "RESOLVABLE",
    "Result",
    "filter_to_dict",
    "iter_ids",
    "iter_records",
    "make_filter",
    "snapshot",
]

REPLAYABLE = (Status.DEAD,)
"""The statuses a replay starts from."""

RESOLVABLE = (Status.DEAD, Status.SCHEDULED)
"""The statuses resolve and discard start from."""

IDS_KEPT = 1000
"""Changed ids a Result keeps (for reports and canaries); counts are always exact."""


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """What a bulk change did: ``matched`` records were selected, ``changed`` of them
    changed, ``skipped`` were not in a status that allows it; ``missing`` ids do not exist."""

    matched: int
    changed: int
    skipped: int
    missing: int = 0
    ids: tuple[str, ...] = ()

    def __add__(self, other: Result) -> Result:
        return Result(
            self.matched + other.matched,
            self.changed + other.changed,
            self.skipped + other.skipped,
            self.missing + other.missing,
            (self.ids + other.ids)[:IDS_KEPT],
        )


def make_filter(where: Filter | None = None, **criteria: Any) -> Filter:
    """A ``Filter`` from keyword criteria; ``status`` takes a name, a Status or a list."""
    status = criteria.pop("status", None)
    base = where or Filter()
    if status is not None:
        values = [status] if isinstance(status, str | Status) else list(status)
        criteria["statuses"] = tuple(Status(value) for value in values)
    return base.replace(**{k: v for k, v in criteria.items() if v is not None})


def filter_to_dict(where: Filter) -> dict[str, JSON]:
    """The non-empty criteria of a filter, as JSON."""
    data: dict[str, JSON] = {}
    for field in dataclasses.fields(where):
        value = getattr(where, field.name)
        if value in (None, (), ""):
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = [str(v.value if isinstance(v, Status) else v) for v in value]
        data[field.name] = value
    return data


def iter_ids(store: Store, where: Filter, *, batch: int = BATCH) -> Iterator[list[str]]:
    """Matching ids in ascending batches: bounded memory over any number of records."""
    after: str | None = None
    while True:
        ids = store.ids(where, limit=batch, after=after)
        if not ids:
            return
        yield ids
        after = ids[-1]


def iter_records(store: Store, where: Filter, *, batch: int = BATCH) -> Iterator[DeadLetter]:
    """Matching records, oldest first, loaded a batch at a time."""
    for ids in iter_ids(store, where, batch=batch):
        page = store.find(Filter(ids=tuple(ids)), limit=len(ids))
        yield from reversed(page.items)


def snapshot(store: Store, clock: Clock, where: Filter) -> Filter:
    """``where`` bounded to the records as they are now: none created later (``max_id``),
    none changed later (``updated_before``). A bulk change of a snapshot never touches more
    records than a count or a plan of it showed."""
    if where.max_id is not None:
        return where
    now = clock.now() + timedelta(microseconds=1)  # changed up to now: included
    before = now if where.updated_before is None else min(where.updated_before, now)
    newest = store.find(where, limit=1).items
    return where.replace(max_id=newest[0].id if newest else "", updated_before=before)
