"""Alert rules per topic, and their pure evaluation against what the store holds now.

Six rule families, each one alert per topic:

- ``count``: dead letters now; ``warning`` at ``warn_count``, ``critical`` at ``critical_count``;
- ``max_age``: the oldest dead letter is older than ``max_age``;
- ``rate``: ``rate`` or more records became dead within ``rate_window``;
- ``expiring``: dead letters that retention will delete within ``expiring`` (warn before
  the evidence is gone); only for topics with a ``retention``;
- ``stalled``: scheduled records overdue by ``stalled`` with no live worker for them;
- ``dlq_depth``: records held by the topic's Kafka DLQ topic (``{topic}.dlq``, read from
  the broker's watermarks); ``warning`` at ``dlq_depth_warn``, ``critical`` at
  ``dlq_depth_critical``; off unless one of them is set.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any, Literal

Severity = Literal["ok", "warning", "critical"]

FAMILIES = ("count", "max_age", "rate", "expiring", "stalled", "dlq_depth")
"""The rule families, in the order they are evaluated and shown."""

_RANK = {"ok": 0, "warning": 1, "critical": 2}


def rank(severity: str) -> int:
    """Order of severities: ok < warning < critical."""
    return _RANK.get(severity, 0)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TopicRules:
    """The thresholds of one topic; ``None`` turns a rule off.

    .. versionadded:: 0.1
    """

    warn_count: int | None = 1
    critical_count: int | None = 100
    max_age: timedelta | None = timedelta(hours=24)
    rate: int | None = None
    rate_window: timedelta = timedelta(hours=1)
    expiring: timedelta | None = timedelta(hours=48)
    stalled: timedelta | None = timedelta(minutes=10)
    dlq_depth_warn: int | None = None
    dlq_depth_critical: int | None = None
    enabled: bool = True

    @property
    def watches_dlq_depth(self) -> bool:
        """Whether the ``dlq_depth`` rule is on (a threshold is set and the topic's rules
        are enabled)."""
        return self.enabled and (
            self.dlq_depth_warn is not None or self.dlq_depth_critical is not None
        )

    def replace(self, **changes: Any) -> TopicRules:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Measurement:
    """What the monitor read about one topic.

    :param expiring: dead letters retention deletes within the ``expiring`` window, or
        None when the topic has no retention.
    :param dlq_depth: records held by the topic's Kafka DLQ topic, or None when not read
        (the rule is off, or the broker could not be asked).
    """

    dead: int = 0
    oldest_age: float | None = None
    new_dead: int = 0
    expiring: int | None = None
    stalled: int = 0
    dlq_depth: int | None = None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Finding:
    """The state of one rule family for one topic.

    ``rule`` names the threshold crossed (``warn_count``, ``critical_count``, ``max_age``,
    ``rate``, ``expiring``, ``stalled``, ``dlq_depth_warn``, ``dlq_depth_critical``), or the
    family when nothing is crossed.
    """

    family: str
    severity: Severity
    rule: str
    value: float
    threshold: float | None


def evaluate(rules: TopicRules, measured: Measurement) -> dict[str, Finding]:
    """The finding of every rule family that is on for ``rules``."""
    if not rules.enabled:
        return {}
    findings = [
        _count(rules, measured),
        _above("max_age", measured.oldest_age or 0.0, _seconds(rules.max_age)),
        _above("rate", measured.new_dead, rules.rate),
        _expiring(rules, measured),
        _above("stalled", measured.stalled, 1 if rules.stalled is not None else None),
        _dlq_depth(rules, measured),
    ]
    return {finding.family: finding for finding in findings if finding is not None}


def _count(rules: TopicRules, measured: Measurement) -> Finding | None:
    warn, critical = ("warn_count", rules.warn_count), ("critical_count", rules.critical_count)
    return _levels("count", measured.dead, warn, critical)


def _dlq_depth(rules: TopicRules, measured: Measurement) -> Finding | None:
    if measured.dlq_depth is None:
        return None
    warn = ("dlq_depth_warn", rules.dlq_depth_warn)
    critical = ("dlq_depth_critical", rules.dlq_depth_critical)
    return _levels("dlq_depth", measured.dlq_depth, warn, critical)


def _levels(
    family: str, value: float, warn: tuple[str, int | None], critical: tuple[str, int | None]
) -> Finding | None:
    """A warning at the ``warn`` threshold, critical at ``critical`` (name, threshold)."""
    if warn[1] is None and critical[1] is None:
        return None
    levels: tuple[tuple[tuple[str, int | None], Severity], ...] = (
        (critical, "critical"),
        (warn, "warning"),
    )
    for (rule, threshold), severity in levels:
        if threshold is not None and value >= threshold:
            return Finding(
                family=family, severity=severity, rule=rule, value=value, threshold=threshold
            )
    threshold = warn[1] if warn[1] is not None else critical[1]
    return Finding(family=family, severity="ok", rule=family, value=value, threshold=threshold)


def _above(family: str, value: float, threshold: float | None) -> Finding | None:
    if threshold is None:
        return None
    severity: Severity = "warning" if value >= threshold and value > 0 else "ok"
    return Finding(family=family, severity=severity, rule=family, value=value, threshold=threshold)


def _expiring(rules: TopicRules, measured: Measurement) -> Finding | None:
    if rules.expiring is None or measured.expiring is None:
        return None
    severity: Severity = "warning" if measured.expiring > 0 else "ok"
    return Finding(
        family="expiring", severity=severity, rule="expiring", value=measured.expiring, threshold=1
    )


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def describe(
    topic: str,
    finding: Finding,
    rules: TopicRules,
    *,
    resolved: bool = False,
    dlq_topic: str | None = None,
) -> str:
    """A one-line human message for a finding that fired (or, ``resolved``, ended);
    ``dlq_topic`` names the Kafka DLQ topic of a ``dlq_depth`` finding."""
    value = finding.value
    if finding.family == "dlq_depth":
        held = f"DLQ topic {dlq_topic or topic + '.dlq'} holds {_records(value)}"
        if resolved:
            return f"{topic}: resolved: {held}, under the thresholds"
        kind = "critical" if finding.severity == "critical" else "warning"
        return f"{topic}: {held} ({kind} threshold {_num(finding.threshold)})"
    if resolved:
        return _resolved(topic, finding)
    if finding.family == "count":
        kind = "critical" if finding.severity == "critical" else "warning"
        return f"{topic}: {_letters(value)} ({kind} threshold {_num(finding.threshold)})"
    if finding.family == "max_age":
        limit = _duration(finding.threshold or 0)
        return f"{topic}: oldest dead letter is {_duration(value)} old (limit {limit})"
    if finding.family == "rate":
        window = _duration(rules.rate_window.total_seconds())
        return (
            f"{topic}: {_letters(value, 'new ')} in the last {window} "
            f"(threshold {_num(finding.threshold)})"
        )
    if finding.family == "stalled":
        after = _duration(rules.stalled.total_seconds() if rules.stalled else 0)
        return (
            f"{topic}: {int(value):,} scheduled records overdue by over {after} and no live "
            "worker runs their handler"
        )
    window = _duration(rules.expiring.total_seconds() if rules.expiring else 0)
    return f"{topic}: {_letters(value)} will be deleted by retention within {window}"


def _resolved(topic: str, finding: Finding) -> str:
    what = {
        "count": f"{_letters(finding.value)} now, under the thresholds",
        "max_age": "no dead letter is over the age limit any more",
        "rate": f"{_letters(finding.value, 'new ')} in the window, under the threshold",
        "expiring": "no dead letter is about to be deleted by retention",
        "stalled": "a worker runs the overdue records again",
    }.get(finding.family, "back to normal")
    return f"{topic}: resolved: {what}"


def _letters(value: float, adjective: str = "") -> str:
    """``1 dead letter``, ``12 new dead letters``."""
    n = int(value)
    return f"{n:,} {adjective}dead letter{'' if n == 1 else 's'}"


def _records(value: float) -> str:
    n = int(value)
    return f"{n:,} record{'' if n == 1 else 's'}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _duration(seconds: float) -> str:
    """``90`` → ``1m 30s``; ``93784`` → ``1d 2h``: the two largest units."""
    seconds = int(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])
