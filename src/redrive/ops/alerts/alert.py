"""The alert a sink receives: the payload every sink gets, plus the top error groups.

``alert_id`` is stable for one episode of a rule on a topic (from the first notification
to the resolved one), so receivers can group an escalation and its resolution.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlencode

from redrive.models import JSON, format_time

MESSAGE_CHARS = 200
"""Sample error messages are cut to this length: enough to recognise, not a data dump."""


class GroupLike(Protocol):
    """The fields of an error group (``DeadLetterQueue.groups()``) an alert shows."""

    @property
    def fingerprint(self) -> str: ...
    @property
    def handler(self) -> str: ...
    @property
    def error_type(self) -> str: ...
    @property
    def count(self) -> int: ...
    @property
    def last_seen(self) -> datetime: ...
    @property
    def sample_message(self) -> str: ...


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Alert:
    """One notification: a rule fired, escalated, is still firing, or resolved.

    :param status: ``firing`` or ``resolved``.
    :param severity: ``warning`` or ``critical`` (a resolved alert keeps the severity it
        had, so a sink that only takes critical alerts also hears when they end).

    .. versionadded:: 0.1
    """

    alert_id: str
    timestamp: datetime
    status: str
    severity: str
    topic: str
    rule: str
    message: str
    value: float
    threshold: float | None
    oldest_age_seconds: float | None
    dead_letters: int
    groups: Sequence[Mapping[str, JSON]] = ()
    console_url: str | None = None
    test: bool = False

    def to_dict(self) -> dict[str, JSON]:
        """The JSON payload webhooks receive."""
        data: dict[str, JSON] = {
            "alert_id": self.alert_id,
            "timestamp": format_time(self.timestamp),
            "status": self.status,
            "severity": self.severity,
            "topic": self.topic,
            "rule": self.rule,
            "message": self.message,
            "value": _number(self.value),
            "threshold": None if self.threshold is None else _number(self.threshold),
            "oldest_age_seconds": (
                None if self.oldest_age_seconds is None else round(self.oldest_age_seconds, 3)
            ),
            "dead_letters": self.dead_letters,
            "groups": [dict(group) for group in self.groups],
        }
        if self.console_url:
            data["console_url"] = self.console_url
        if self.test:
            data["test"] = True
        return data

    @property
    def title(self) -> str:
        """``[CRITICAL] rfq: 57 dead letters ...``, or ``[RESOLVED] ...``."""
        label = "RESOLVED" if self.status == "resolved" else self.severity.upper()
        return f"[{label}] {self.message}"


def group_summary(group: GroupLike) -> dict[str, JSON]:
    """What an alert says about one error group: no payloads, a short sample message."""
    message = group.sample_message
    if len(message) > MESSAGE_CHARS:
        message = message[: MESSAGE_CHARS - 1] + "…"
    return {
        "fingerprint": group.fingerprint,
        "handler": group.handler,
        "error_type": group.error_type,
        "count": group.count,
        "last_seen": format_time(group.last_seen),
        "sample_message": message,
    }


def console_link(public_url: str | None, topic: str) -> str | None:
    """The console page of the topic's dead letters, when ``public_url`` is configured."""
    if not public_url:
        return None
    query = urlencode({"topic": topic, "status": "dead"})
    return f"{public_url.rstrip('/')}/dead-letters?{query}"


def _number(value: float) -> Any:
    return int(value) if float(value).is_integer() else round(value, 3)
