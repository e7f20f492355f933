"""The request and response bodies of the REST API (the only place redrive uses Pydantic)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from redrive._json import NotJSON, check_json
from redrive.models import Status
from redrive.ops.auth import Role

Text = Field(default=None, max_length=500)
PATCH_DOC = (
    "A JSON merge patch (RFC 7386) applied to the payload first; the record's history keeps "
    "the original. Masked values (***) sent back keep their original value."
)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _plain_json(cls, data: Any) -> Any:
        """Refuse, before any field is read, what no store can keep: NaN, Infinity, a
        lone surrogate or a NUL in any text, nesting deeper than 100 levels."""
        try:
            check_json(data, "the body", strict=True)
        except NotJSON as exc:
            raise ValueError(str(exc)) from None
        return data


class Sort(enum.StrEnum):
    """The order of a listing: by creation (id order), by the time a record died, or by its
    attempts; ``-`` in front for descending. Ties go by id; records that never died come
    last under ``dead`` and ``-dead``."""

    NEWEST = "-created"
    OLDEST = "created"
    DIED_LAST = "-dead"
    DIED_FIRST = "dead"
    MOST_ATTEMPTS = "-attempts"
    FEWEST_ATTEMPTS = "attempts"


class FilterIn(_In):
    """Which records a listing, export or bulk action applies to (all criteria AND-ed)."""

    status: list[Status] | None = Field(default=None, max_length=5)
    topic: str | None = Text
    handler: str | None = Text
    error_type: str | None = Text
    group: str | None = Field(default=None, max_length=500, description="A fingerprint.")
    tenant: str | None = Text
    correlation_id: str | None = Text
    version: str | None = Field(default=None, max_length=200, description="App version.")
    since: str | None = Field(
        default=None, max_length=64, description="Created after: ISO-8601 time or age (2h, 7d)."
    )
    until: str | None = Field(
        default=None, max_length=64, description="Created before: ISO-8601 time or age."
    )
    q: str | None = Field(default=None, max_length=500, description="Text in message or payload.")

    def is_empty(self) -> bool:
        """Whether no criterion is set (it would match every record)."""
        return not any(value for value in self.model_dump().values())


class BulkIn(_In):
    """A bulk action on ``ids`` or on the records matching ``filter`` (one of the two)."""

    ids: list[str] | None = Field(default=None, min_length=1, max_length=100_000)
    filter: FilterIn | None = None
    dry_run: bool = Field(default=False, description="Count what would change; change nothing.")
    note: str | None = Field(default=None, max_length=1000, description="Kept in the audit trail.")

    @model_validator(mode="after")
    def _one_selection(self) -> BulkIn:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give exactly one of 'ids' or 'filter'")
        if self.filter is not None and self.filter.is_empty():
            raise ValueError("an empty filter would match every record; give a criterion")
        return self


class RetryBulkIn(BulkIn):
    """A bulk replay; ``rate`` spreads the replays out to that many records per second."""

    patch: dict[str, Any] | None = Field(default=None, description=PATCH_DOC)
    delay_seconds: float = Field(default=0, ge=0, le=30 * 86400)
    rate: float | None = Field(
        default=None, ge=0.001, le=1_000_000, description="Records per second (0.001 to 1e6)."
    )
    force: bool = Field(default=False, description="Also replay records at max_replays.")


class RetryIn(_In):
    """A replay of one record, optionally with a patched payload."""

    patch: dict[str, Any] | None = Field(default=None, description=PATCH_DOC)
    delay_seconds: float = Field(default=0, ge=0, le=30 * 86400)
    note: str | None = Field(default=None, max_length=1000)


class NoteIn(_In):
    """An optional note for the audit trail."""

    note: str | None = Field(default=None, max_length=1000)


class PurgeIn(_In):
    """Delete finished records older than ``older_than``."""

    older_than: str = Field(max_length=32, description="An age: 30d, 12h, 90m.")
    status: list[Status] = Field(
        default=[Status.RESOLVED, Status.DISCARDED], min_length=1, max_length=5
    )
    topic: str | None = Text


class TokenIn(_In):
    """A new API token."""

    name: str = Field(min_length=1, max_length=64)
    role: Role = Role.VIEWER


class AttemptOut(BaseModel):
    """One entry of a record's history."""

    kind: str
    at: datetime
    error_type: str | None = None
    error_message: str | None = None
    duration: float | None = None
    detail: dict[str, Any] | None = None


class SummaryOut(BaseModel):
    """A dead letter as listed (no payload, traceback or history)."""

    id: str
    event_id: str
    topic: str
    handler: str
    status: Status
    attempts: int
    max_attempts: int
    error_type: str
    error_message: str
    fingerprint: str
    key: str | None
    tenant_id: str | None
    correlation_id: str | None
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None
    dead_at: datetime | None
    resolved_at: datetime | None
    replays: int


class DeadLetterOut(SummaryOut):
    """A dead letter in full; sensitive payload fields and headers are masked."""

    payload: Any
    headers: dict[str, str]
    source: str | None
    occurred_at: datetime
    traceback: str
    history: list[AttemptOut]
    origin: dict[str, Any]
    consumer: dict[str, Any]


class PageOut(BaseModel):
    """One page of a listing; pass ``next_cursor`` as ``cursor`` for the next one."""

    items: list[SummaryOut]
    next_cursor: str | None


class BulkOut(BaseModel):
    """What a bulk action did (or, with ``dry_run``, would do)."""

    matched: int
    changed: int
    skipped: int
    missing: int
    dry_run: bool


class TopicStatsOut(BaseModel):
    """Counts and ages of one topic."""

    topic: str
    counts: dict[str, int]
    oldest_dead_at: datetime | None
    new_dead_last_hour: int
    new_dead_last_day: int


class StatsOut(BaseModel):
    """Counts by status (all topics) and per topic."""

    totals: dict[str, int]
    topics: list[TopicStatsOut]


class GroupOut(BaseModel):
    """Records that share a fingerprint: one cause."""

    fingerprint: str
    topic: str
    handler: str
    error_type: str
    count: int
    first_seen: datetime
    last_seen: datetime
    sample_message: str
    sample_id: str


class AuditOut(BaseModel):
    """Who did what to how many records."""

    id: str
    at: datetime
    actor: str
    action: str
    count: int
    detail: dict[str, Any]


class AuditPageOut(BaseModel):
    """A page of the audit trail, newest first."""

    items: list[AuditOut]
    next_cursor: str | None


class TimelineOut(BaseModel):
    """Records that became dead in one minute."""

    minute: datetime
    topic: str
    count: int


class TokenOut(BaseModel):
    """A token's public fields."""

    id: str
    name: str
    role: Role
    created_at: datetime | None


class TokenCreatedOut(TokenOut):
    """A new token: ``token`` is shown this once and never stored."""

    token: str


class HealthOut(BaseModel):
    """Liveness or readiness."""

    status: str
