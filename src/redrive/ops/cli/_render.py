"""Rich rendering of records, stats, groups and the audit trail for a terminal.

Tables are borderless and let long text cells shrink with an ellipsis, so that they fit
an 80-column terminal; ids are never cut (operators copy them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table

from redrive.models import DeadLetter, Status, utcnow

if TYPE_CHECKING:
    from redrive.redact import Redactor
    from redrive.service import AuditEntry, Group, ReplayPlan, Stats

STATUS_ORDER = (Status.DEAD, Status.SCHEDULED, Status.RETRYING, Status.RESOLVED, Status.DISCARDED)


def console() -> Console:
    """A console on stdout; 80 columns when stdout is not a terminal."""
    return Console(highlight=False, soft_wrap=False)


def age(when: datetime | None, now: datetime | None = None) -> str:
    """``45s``, ``12m``, ``3h``, ``5d``: how long ago ``when`` was."""
    if when is None:
        return "-"
    seconds = max(((now or utcnow()) - when).total_seconds(), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def table(*columns: str, **options: Any) -> Table:
    """A compact borderless table with these column headers."""
    grid = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, **options)
    for name in columns:
        grid.add_column(name, overflow="ellipsis", no_wrap=True)
    return grid


def records_table(records: Sequence[DeadLetter]) -> Table:
    """id, topic, handler, error, attempts, age: one line per record."""
    grid = table("ID", "TOPIC", "HANDLER", "ERROR", "ATT", "AGE")
    grid.columns[0].min_width = 36
    grid.columns[4].justify = "right"
    now = utcnow()
    for record in records:
        error = f"{_short(record.error_type)}: {record.error_message}"
        grid.add_row(
            record.id, record.topic, _short(record.handler), error,
            str(record.attempts), age(record.created_at, now),
        )  # fmt: skip
    return grid


def _short(dotted: str) -> str:
    """The last part of a dotted name: ``app.handlers.send_receipt`` -> ``send_receipt``."""
    return dotted.rsplit(".", 1)[-1]


def show_record(out: Console, record: DeadLetter, redactor: Redactor) -> None:
    """Every field, the payload pretty-printed, the traceback and the attempt timeline."""
    data = redactor.record(record.to_dict())
    fields = table("FIELD", "VALUE", show_header=False)
    for key in ("id", "status", "topic", "handler", "event_id", "key", "correlation_id",
                "tenant_id", "source", "error_type", "error_message", "fingerprint",
                "attempts", "max_attempts", "replays", "occurred_at", "created_at",
                "updated_at", "next_attempt_at", "dead_at", "resolved_at"):  # fmt: skip
        if data.get(key) is not None:
            fields.add_row(key, str(data[key]))
    out.print(fields)
    for title in ("payload", "headers", "origin", "consumer"):
        if data.get(title) not in (None, {}, []):
            out.print(f"\n[bold]{title}[/bold]")
            out.print(json.dumps(data[title], indent=2, ensure_ascii=False), markup=False)
    if record.traceback:
        out.print("\n[bold]traceback[/bold]")
        out.print(record.traceback.rstrip(), markup=False)
    out.print("\n[bold]timeline[/bold]")
    out.print(timeline_table(data["history"]))


def timeline_table(history: Iterable[dict[str, Any]]) -> Table:
    """One row per attempt or operator action."""
    grid = table("#", "AT", "WHAT", "DETAIL")
    for number, entry in enumerate(history, start=1):
        what = entry["kind"]
        if entry.get("duration") is not None:
            what += f" ({entry['duration'] * 1000:.0f} ms)"
        detail = entry.get("error_type") or ""
        if entry.get("error_message"):
            detail += f": {entry['error_message']}"
        if entry.get("detail"):
            detail = (detail + " " if detail else "") + json.dumps(entry["detail"], default=str)
        grid.add_row(str(number), str(entry["at"])[:23], what, detail)
    return grid


def stats_table(stats: Stats) -> Table:
    """Counts by topic x status, the oldest dead letter's age, new dead letters."""
    grid = table("TOPIC", *(s.value.upper() for s in STATUS_ORDER), "OLDEST", "1H", "24H")
    now, totals = utcnow(), [0] * len(STATUS_ORDER)
    for column in grid.columns[1:]:
        column.justify = "right"
    for topic in sorted(stats.counts):
        counts = [stats.counts[topic].get(status, 0) for status in STATUS_ORDER]
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        grid.add_row(
            topic, *(f"{n:,}" for n in counts), age(stats.oldest_dead_at.get(topic), now),
            f"{stats.new_dead_last_hour.get(topic, 0):,}",
            f"{stats.new_dead_last_day.get(topic, 0):,}",
        )  # fmt: skip
    grid.add_section()
    grid.add_row(
        "all", *(f"{n:,}" for n in totals), "",
        f"{sum(stats.new_dead_last_hour.values()):,}", f"{sum(stats.new_dead_last_day.values()):,}",
    )  # fmt: skip
    return grid


def groups_table(groups: Sequence[Group]) -> Table:
    """One row per error group, biggest first."""
    grid = table("GROUP", "COUNT", "TOPIC", "HANDLER", "ERROR", "FIRST", "LAST")
    grid.columns[0].min_width = 16
    grid.columns[1].justify = "right"
    now = utcnow()
    for group in groups:
        grid.add_row(
            group.fingerprint, f"{group.count:,}", group.topic, _short(group.handler),
            f"{_short(group.error_type)}: {group.sample_message}",
            age(group.first_seen, now), age(group.last_seen, now),
        )  # fmt: skip
    return grid


def audit_table(entries: Sequence[AuditEntry]) -> Table:
    """Who did what, when, to how many records."""
    grid = table("AT", "ACTOR", "ACTION", "COUNT", "DETAIL")
    grid.columns[3].justify = "right"
    for entry in entries:
        detail = {k: v for k, v in entry.detail.items() if k not in ("original_payloads",)}
        grid.add_row(
            entry.at.strftime("%Y-%m-%d %H:%M:%S"), entry.actor, entry.action,
            f"{entry.count:,}", json.dumps(detail, default=str),
        )  # fmt: skip
    return grid


def show_plan(out: Console, plan: ReplayPlan) -> None:
    """The dry-run view of a replay: count, by topic, by group, a few samples."""
    out.print(f"would replay {plan.count:,} dead letters", markup=False)
    if plan.guarded:
        out.print(
            f"left out: {plan.guarded:,} already replayed the maximum number of times "
            "(--force includes them)",
            markup=False,
        )
    if plan.by_topic:
        grid = table("TOPIC", "COUNT")
        for topic, count in plan.by_topic.items():
            grid.add_row(topic, f"{count:,}")
        out.print(grid)
    if plan.groups:
        out.print(groups_table(plan.groups))
    if plan.samples:
        out.print("samples:")
        out.print(records_table(plan.samples))
