"""The audit trail filtered by action, actor and time, a page at a time.

The store pages the trail newest first; the filters are applied while reading, so a
filtered page reads at most ``SCAN`` entries (the cursor then resumes where it stopped)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING

from redrive.stores.base import AuditEntry

if TYPE_CHECKING:
    from redrive.service import DeadLetterQueue

SCAN = 5000
"""Audit entries read at most for one filtered page."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AuditQuery:
    """Which audit entries: ``action`` (``retry``, ``delete``, ... or a prefix such as
    ``token``), ``actor``, and a time range."""

    action: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, entry: AuditEntry) -> bool:
        """Whether ``entry`` is one of these."""
        if self.action and not (
            entry.action == self.action or entry.action.startswith(self.action + ".")
        ):
            return False
        if self.actor and entry.actor != self.actor:
            return False
        if self.since and entry.at < self.since:
            return False
        return not (self.until and entry.at >= self.until)


def audit_page(
    dlq: DeadLetterQueue, query: AuditQuery, *, limit: int, cursor: str | None = None
) -> tuple[list[AuditEntry], str | None]:
    """Up to ``limit`` matching entries, newest first, and the cursor of the next page."""
    found: list[AuditEntry] = []
    read = 0
    batch = max(limit + 1, 200)
    while read < SCAN:
        entries = dlq.store.list_audit(limit=batch, cursor=cursor)
        for entry in entries:
            read += 1
            cursor = entry.id
            if query.since and entry.at < query.since:
                return found, None  # newest first: nothing older can match
            if query.matches(entry):
                found.append(entry)
                if len(found) == limit:
                    return found, entry.id
        if len(entries) < batch:
            return found, None
    return found, cursor
