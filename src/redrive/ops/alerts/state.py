"""Alert state and the monitor lock, in the store's shared key/value table.

This is the only alerts module that touches ``service.store``, and only its ``meta_*``
compare-and-set methods. Every notification first wins a compare-and-set on its rule's
state, so monitor replicas on one shared store send each notification once even if two
of them evaluate at the same moment; the lock only keeps the standbys from working for
nothing.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from redrive.models import JSON, format_time, parse_time
from redrive.ops.alerts.rules import Finding, rank

if TYPE_CHECKING:
    from redrive.service import DeadLetterQueue

NAMESPACE = "redrive.alerts"
LOCK_KEY = "lock"
_PREFIX = "state/"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AlertState:
    """What was last decided for one rule family of one topic.

    :param severity: ``ok``, ``warning`` or ``critical`` as last evaluated and recorded.
    :param alert_id: the episode's id, kept from the first notification to the resolved one.
    """

    topic: str
    family: str
    severity: str
    alert_id: str
    rule: str
    value: float
    threshold: float | None
    since: datetime
    last_sent_at: datetime | None = None

    @property
    def key(self) -> str:
        """The key of this state in the store."""
        return state_key(self.topic, self.family)

    def replace(self, **changes: Any) -> AlertState:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, JSON]:
        """The stored shape."""
        return {
            "topic": self.topic,
            "family": self.family,
            "severity": self.severity,
            "alert_id": self.alert_id,
            "rule": self.rule,
            "value": self.value,
            "threshold": self.threshold,
            "since": format_time(self.since),
            "last_sent_at": format_time(self.last_sent_at),
        }

    @classmethod
    def from_json(cls, data: JSON) -> AlertState:
        """Read a stored state."""
        return cls(
            topic=str(data["topic"]),
            family=str(data["family"]),
            severity=str(data["severity"]),
            alert_id=str(data["alert_id"]),
            rule=str(data.get("rule") or data["family"]),
            value=float(data.get("value") or 0),
            threshold=data.get("threshold"),
            since=parse_time(data["since"]) or _epoch(),
            last_sent_at=parse_time(data.get("last_sent_at")),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Transition:
    """What an evaluation changes for one rule: the new state, and what to notify.

    ``kind``: ``fired`` (a new episode), ``escalated`` (warning to critical: at once,
    whatever the cooldown), ``repeated`` (still firing after the cooldown), ``resolved``,
    or ``changed`` (a quieter severity within the cooldown: recorded, not sent).
    """

    state: AlertState
    kind: str

    @property
    def notify(self) -> bool:
        """Whether this transition sends a notification."""
        return self.kind != "changed"


def transition(
    previous: AlertState | None,
    finding: Finding,
    *,
    topic: str,
    now: datetime,
    cooldown: timedelta,
    new_id: str,
) -> Transition | None:
    """The transition ``finding`` causes from ``previous``, or None if nothing changes."""
    was = previous.severity if previous is not None else "ok"
    if finding.severity == "ok":
        if previous is None or was == "ok":
            return None
        resolved = previous.replace(severity="ok", value=finding.value, since=now, last_sent_at=now)
        return Transition(resolved, "resolved")
    if previous is None or was == "ok":
        state = AlertState(
            topic=topic,
            family=finding.family,
            severity=finding.severity,
            rule=finding.rule,
            value=finding.value,
            threshold=finding.threshold,
            alert_id=new_id,
            since=now,
            last_sent_at=now,
        )
        return Transition(state, "fired")
    if rank(finding.severity) > rank(was):
        return Transition(_firing(previous, finding, since=now, last_sent_at=now), "escalated")
    last = previous.last_sent_at
    if last is None or now - last >= cooldown:
        return Transition(_firing(previous, finding, last_sent_at=now), "repeated")
    if finding.severity != was:
        return Transition(_firing(previous, finding, since=now), "changed")
    return None


def _firing(state: AlertState, finding: Finding, **changes: object) -> AlertState:
    return state.replace(
        severity=finding.severity,
        rule=finding.rule,
        value=finding.value,
        threshold=finding.threshold,
        **changes,
    )


def state_key(topic: str, family: str) -> str:
    """``state/<family>/<topic>``: topics may contain any character, so they come last."""
    return f"{_PREFIX}{family}/{topic}"


class StateStore:
    """Reads and writes alert states and the lock with compare-and-set."""

    def __init__(self, service: DeadLetterQueue) -> None:
        self._store = service.store

    def all(self) -> dict[str, AlertState]:
        """Every recorded state by key (a snapshot; decisions re-read with :meth:`get`)."""
        return {
            key: AlertState.from_json(value)
            for key, value in self._store.meta_list(NAMESPACE).items()
            if key.startswith(_PREFIX)
        }

    def get(self, key: str) -> tuple[AlertState | None, int]:
        """The state under ``key`` and its version (0 when absent)."""
        found = self._store.meta_get(NAMESPACE, key)
        if found is None:
            return None, 0
        return AlertState.from_json(found[0]), found[1]

    def put(self, state: AlertState, version: int) -> bool:
        """Write ``state`` if the stored version is still ``version``; return whether it was."""
        return self._store.meta_put(NAMESPACE, state.key, state.to_json(), version=version)

    def acquire(self, owner: str, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the monitor lock for ``ttl``; False while another owner holds it."""
        found = self._store.meta_get(NAMESPACE, LOCK_KEY)
        version = 0 if found is None else found[1]
        if found is not None:
            holder = found[0] or {}
            expires = parse_time(holder.get("expires_at"))
            if holder.get("owner") != owner and expires is not None and expires > now:
                return False
        value = {"owner": owner, "expires_at": format_time(now + ttl)}
        return self._store.meta_put(NAMESPACE, LOCK_KEY, value, version=version)

    def holder(self) -> tuple[str, datetime | None] | None:
        """Who holds the lock and until when, if anyone ever took it."""
        found = self._store.meta_get(NAMESPACE, LOCK_KEY)
        if found is None:
            return None
        holder = found[0] or {}
        return str(holder.get("owner")), parse_time(holder.get("expires_at"))

    def release(self, owner: str, now: datetime) -> None:
        """Give the lock up (if ``owner`` holds it), so a standby takes over at once."""
        found = self._store.meta_get(NAMESPACE, LOCK_KEY)
        if found is not None and (found[0] or {}).get("owner") == owner:
            value = {"owner": owner, "expires_at": format_time(now)}
            self._store.meta_put(NAMESPACE, LOCK_KEY, value, version=found[1])


def _epoch() -> datetime:
    return datetime.fromtimestamp(0, UTC)
