"""Query parameters and JSON filters into the service's ``Filter``."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import Query

from redrive.config import parse_duration
from redrive.models import Status, parse_time
from redrive.ops.api.problems import Problem
from redrive.ops.api.schemas import FilterIn
from redrive.stores.base import Filter


def filter_query(
    status: list[Status] | None = Query(None, max_length=5),  # noqa: B008
    topic: str | None = Query(None, max_length=500),
    handler: str | None = Query(None, max_length=500),
    error_type: str | None = Query(None, max_length=500),
    group: str | None = Query(None, max_length=500, description="A fingerprint."),
    tenant: str | None = Query(None, max_length=500),
    correlation_id: str | None = Query(None, max_length=500),
    version: str | None = Query(None, max_length=200, description="App version."),
    since: str | None = Query(None, max_length=64, description="ISO-8601 time or age (2h, 7d)."),
    until: str | None = Query(None, max_length=64, description="ISO-8601 time or age."),
    q: str | None = Query(None, max_length=500, description="Text in message or payload."),
) -> FilterIn:
    """The listing filters, as query parameters (``status`` may repeat)."""
    return FilterIn(
        status=status,
        topic=topic,
        handler=handler,
        error_type=error_type,
        group=group,
        tenant=tenant,
        correlation_id=correlation_id,
        version=version,
        since=since,
        until=until,
        q=q,
    )


def to_filter(data: FilterIn, now: datetime, *, payload_search: bool = True) -> Filter:
    """The store filter for ``data``; a bad time is a 422 naming the field.

    :param payload_search: search the payload too; off when fields are masked, since a
        search over the raw payload would reveal them one guess at a time.
    """
    return Filter(
        statuses=tuple(data.status or ()),
        topic=data.topic or None,
        handler=data.handler or None,
        error_type=data.error_type or None,
        fingerprint=data.group or None,
        tenant_id=data.tenant or None,
        correlation_id=data.correlation_id or None,
        version=data.version or None,
        created_after=parse_when(data.since, now, "since"),
        created_before=parse_when(data.until, now, "until"),
        search=data.q or None,
        search_payload=payload_search,
    )


def parse_when(text: str | None, now: datetime, name: str) -> datetime | None:
    """An ISO-8601 time, or an age such as ``2h`` counted back from ``now``."""
    if not text:
        return None
    try:
        return now - parse_duration(text)
    except (ValueError, OverflowError):
        pass
    try:
        return parse_time(text)
    except (ValueError, OverflowError):
        raise Problem(
            422, f"{name}: expected an ISO-8601 time or an age such as 2h or 7d, got {text!r}"
        ) from None


def parse_age(text: str, name: str) -> timedelta:
    """An age such as ``30d``; a bad one is a 422 naming the field."""
    try:
        age = parse_duration(text)
        if age > timedelta(days=36500):
            raise ValueError(text)
    except (ValueError, OverflowError):
        expected = "an age such as 30d, 12h or 90m"
        raise Problem(422, f"{name}: expected {expected}, got {text!r}") from None
    return age
