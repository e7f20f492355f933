"""The values of bulk operations: what a change did (``Result``), and filters built from
keyword criteria or turned back into JSON for the audit trail."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from redrive.models import JSON, Status
from redrive.stores.base import Filter

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
