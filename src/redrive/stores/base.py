"""The Store protocol every backend implements, and the query values it takes.

A store is synchronous and thread-safe; the async core calls it from worker threads.
Every status change is a compare-and-set on the old status, so two workers or two
operators can never run or change one record twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from redrive.models import JSON, Attempt, DeadLetter, Status
from redrive.stores.paging import DEFAULT_SORT as DEFAULT_SORT  # the sorts a listing offers
from redrive.stores.paging import SORTS as SORTS


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Filter:
    """Which dead letters a query, a count or a bulk change applies to. Empty matches all.

    ``search`` looks for the text in the error message and, unless ``search_payload`` is
    false, in the payload (surfaces that mask payload fields turn it off: a search over the
    raw payload would let anyone guess a masked value).
    ``max_id`` bounds a selection to records that existed when a plan was made
    (ids grow with time), so a bulk change never touches more than its plan showed.
    """

    statuses: tuple[Status, ...] = ()
    topic: str | None = None
    handler: str | None = None
    error_type: str | None = None
    fingerprint: str | None = None
    tenant_id: str | None = None
    correlation_id: str | None = None
    version: str | None = None
    event_id: str | None = None
    key: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    dead_after: datetime | None = None
    dead_before: datetime | None = None
    updated_before: datetime | None = None
    search: str | None = None
    search_payload: bool = True
    ids: tuple[str, ...] = ()
    max_id: str | None = None
    max_replays: int | None = None

    def replace(self, **changes: Any) -> Filter:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing, in its sort order; pass ``next_cursor`` to get the next one."""

    items: list[DeadLetter]
    next_cursor: str | None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Stats:
    """Counts by topic and status, and the age of what is dead.

    ``new_dead_*`` count first deaths: records that became dead without a replay (new dead
    letters). ``redead_*`` count replayed records that died again: retrying a group that
    still fails never looks like new failures. ``oldest_dead_at`` is the first failure
    (``created_at``) of the oldest dead letter, which a replay does not reset.
    """

    counts: Mapping[str, Mapping[Status, int]]
    oldest_dead_at: Mapping[str, datetime]
    new_dead_last_hour: Mapping[str, int]
    new_dead_last_day: Mapping[str, int]
    redead_last_hour: Mapping[str, int] = dataclasses.field(default_factory=dict)
    redead_last_day: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def total(self, status: Status | None = None) -> int:
        """Records in ``status`` (or in all statuses) across topics."""
        return sum(
            n
            for by_status in self.counts.values()
            for s, n in by_status.items()
            if status is None or s == status
        )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Group:
    """Dead letters that share a fingerprint: one cause."""

    fingerprint: str
    topic: str
    handler: str
    error_type: str
    count: int
    first_seen: datetime
    last_seen: datetime
    sample_message: str
    sample_id: str


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Change:
    """A compare-and-set status change applied to each of ``ids`` still in ``from_statuses``.

    :param entry: appended to each changed record's history.
    :param payloads: new payloads by record id (an operator's patch before a replay).
    :param replay: count this as a replay: ``replays + 1`` and a fresh round of attempts.
    """

    to: Status
    from_statuses: tuple[Status, ...]
    now: datetime
    next_attempt_at: datetime | None = None
    entry: Attempt | None = None
    payloads: Mapping[str, JSON] = dataclasses.field(default_factory=dict)
    replay: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AuditEntry:
    """Who did what to how many records, and with which selection."""

    id: str
    at: datetime
    actor: str
    action: str
    count: int
    detail: Mapping[str, JSON] = dataclasses.field(default_factory=dict)


@runtime_checkable
class Listener(Protocol):
    """Optional for a store: ``listen(callback)`` calls ``callback()`` (from any thread)
    whenever any process schedules records (a replay, a retry); it returns a function that
    stops listening. Schedulers use it to start replays at once instead of at their next
    poll. PostgreSQL implements it with LISTEN/NOTIFY."""

    def listen(self, callback: Callable[[], None]) -> Callable[[], None]: ...


class AuditLog(Protocol):
    """The trail of operator actions.

    .. versionadded:: 0.2
    """

    def add_audit(self, entry: AuditEntry) -> None:
        """Record an operator action."""

    def list_audit(self, *, limit: int, cursor: str | None = None) -> list[AuditEntry]:
        """Audit entries newest first, before ``cursor`` (an entry id)."""


class MetaStore(Protocol):
    """Small shared state for ops features (tokens, alert state, locks): versioned
    key/value rows with compare-and-set.

    .. versionadded:: 0.2
    """

    def meta_get(self, namespace: str, key: str) -> tuple[JSON, int] | None:
        """The value stored under (namespace, key) and its version, or None."""

    def meta_put(
        self, namespace: str, key: str, value: JSON, *, version: int | None = None
    ) -> bool:
        """Store a value. With ``version`` set, only if the current version is that one
        (0: only if absent): a compare-and-set. Returns whether it was written."""

    def meta_list(self, namespace: str) -> dict[str, JSON]:
        """Every key and value in a namespace."""

    def meta_delete(self, namespace: str, key: str) -> bool:
        """Remove a key; return whether it existed."""


class Store(AuditLog, MetaStore, Protocol):
    """What the core, the service and the scheduler need from a backend: the dead letters,
    plus the audit trail and the key/value of the protocols above.

    .. versionadded:: 0.1
    """

    url: str
    """The store's URL with any password masked: safe to log."""

    kind: str
    """What database this is (``sqlite``, ``postgresql``): features that keep tables of
    their own in the store's database (the outbox) pick their SQL by it."""

    # -- lifecycle ---------------------------------------------------------------------
    def migrate(self) -> int:
        """Bring the schema up to date; return the schema version."""

    def close(self) -> None:
        """Release connections. The store is unusable afterwards."""

    # -- the engine's writes -----------------------------------------------------------
    writes_together: bool
    """Whether ``together()`` commits the writes made in it as one transaction. A store
    whose writers take turns on one lock (SQLite) does: the engine's writer then sends it
    new failures, retry outcomes and claims in one group commit. A store whose writes run
    side by side on connections of their own (PostgreSQL) does not, and gets one group
    commit per kind of write.

    .. versionadded:: 0.2
    """

    def together(self) -> AbstractContextManager[None]:
        """A scope for the writes this thread makes in it. Where ``writes_together`` is
        true they commit as one transaction when it ends: nothing written in it is durable,
        or visible to others, before that, and an error rolls all of it back. Elsewhere
        each write commits on its own, as outside the scope.

        .. versionadded:: 0.2
        """

    def add(self, records: Sequence[DeadLetter]) -> list[str]:
        """Insert new records in one transaction; durable when this returns. Return the id
        each record is stored under, in order.

        Idempotent per (event id, handler): a record whose pair already has an open record
        (``scheduled``, ``retrying`` or ``dead``) is merged into it instead (its history
        appended, its error the latest; a ``dead`` failure makes a ``scheduled`` record
        dead), and that record's id is returned. So a source that redelivers an event
        after a crash never records one failure twice."""

    def save(self, record: DeadLetter, *, lease_owner: str) -> bool:
        """Write the outcome of a retry, only if ``lease_owner`` (the claim's token) still
        holds the lease. Idempotent: a save retried after a commit whose answer was lost
        finds its own outcome there and returns True."""

    def save_many(self, outcomes: Sequence[tuple[DeadLetter, str]]) -> list[bool]:
        """``save`` each (outcome, lease owner) in one transaction (a group commit of retry
        outcomes); return, per outcome, whether it was saved."""

    def claim_due(
        self,
        *,
        now: datetime,
        lease_until: datetime,
        owner: str,
        limit: int,
        handlers: Collection[tuple[str, str]] | None = None,
        exclude: Collection[str] = (),
    ) -> list[DeadLetter]:
        """Move up to ``limit`` due records (scheduled and due, or retrying with an expired
        lease) to ``retrying`` under a lease held by ``owner``, counting the attempt
        (``attempts + 1``, so attempts that end with their worker count); oldest due first.
        ``handlers`` limits the claim to these (topic, handler name) pairs; ids in
        ``exclude`` (the attempts the claimer still runs) are never claimed. A store that
        waits for a lock first adds the wait to ``lease_until``: a lease starts when its
        claim commits. ``owner`` is the claim's fencing token: ``save`` and
        ``extend_leases`` must name it."""

    def extend_leases(self, ids: Sequence[str], *, owner: str, until: datetime) -> int:
        """Move the lease of those of ``ids`` that ``owner`` still holds to ``until`` (the
        scheduler's heartbeat while their attempts run); return how many it holds. A store
        that waits for a lock first adds the wait to ``until``: a heartbeat queued behind
        another writer still grants a whole lease."""

    def next_due_at(self, handlers: Collection[tuple[str, str]] | None = None) -> datetime | None:
        """When the earliest scheduled record (or expiring lease) for ``handlers`` is due."""

    def dead_timeline(
        self, since: datetime, *, topic: str | None = None
    ) -> list[tuple[datetime, str, int]]:
        """(minute, topic, records that became dead in it) since ``since``, oldest first."""

    # -- reads -------------------------------------------------------------------------
    def get(self, record_id: str) -> DeadLetter | None:
        """The record with that id, or None."""

    def find(
        self, where: Filter, *, limit: int, cursor: str | None = None, sort: str = DEFAULT_SORT
    ) -> Page:
        """A page of matching records in ``sort`` order (one of ``paging.SORTS``; newest
        first by default), by keyset on the sort key and the id; ``next_cursor`` carries
        both."""

    def ids(self, where: Filter, *, limit: int, after: str | None = None) -> list[str]:
        """Matching ids in ascending order after ``after``: for batched bulk work."""

    def count(self, where: Filter) -> int:
        """How many records match."""

    def stats(self, now: datetime) -> Stats:
        """Counts by topic and status (kept up to date, not scanned), and dead-letter ages."""

    def prune_timeline(self, before: datetime) -> int:
        """Drop the dead-letter timeline's minutes before ``before``; return how many."""

    def groups(self, where: Filter, *, limit: int) -> list[Group]:
        """Error groups among matching records, biggest first."""

    # -- operator changes --------------------------------------------------------------
    def transition(self, ids: Sequence[str], change: Change) -> list[str]:
        """Apply ``change`` to those of ``ids`` whose status is in ``change.from_statuses``,
        atomically per record; return the ids that changed."""

    def delete(self, ids: Sequence[str], *, where: Filter | None = None) -> int:
        """Delete these records (only those still matching ``where``, when given: a
        compare-and-set for deletions); return how many were deleted."""

    def import_records(self, records: Iterable[DeadLetter]) -> int:
        """Insert records as they are (ids kept), skipping ids already present."""
