"""Plain-text rendering of records, stats, groups and the audit trail.

Tables fit the terminal: long text cells are cut with an ellipsis, ids never (operators
copy them). When stdout is not a terminal (``| grep``, ``| less``, CI logs) nothing is cut,
as ``kubectl get`` does; ``COLUMNS`` sets a width anyway. Plain text renders in a few
milliseconds and pipes cleanly into grep and less. Everything goes out through ``Out``,
which shows control characters from records as ``\\xNN`` (``_common.printable``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer

from redrive.models import DeadLetter, Status, utcnow
from redrive.ops.cli._common import printable

if TYPE_CHECKING:
    from redrive.service import AuditEntry, Group, ReplayPlan, Stats

STATUS_ORDER = (Status.DEAD, Status.SCHEDULED, Status.RETRYING, Status.RESOLVED, Status.DISCARDED)
STATUS_HEADERS = {
    Status.DEAD: "DEAD",
    Status.SCHEDULED: "SCHED",
    Status.RETRYING: "RETRY",
    Status.RESOLVED: "RESOLVED",
    Status.DISCARDED: "DISCARD",
}


UNCUT = 1_000_000
"""The width of a table when stdout is not a terminal: no cell is cut."""


def output_width() -> int:
    """The terminal's width; ``COLUMNS`` if set; no limit when stdout is not a terminal."""
    if os.environ.get("COLUMNS") or sys.stdout.isatty():
        return shutil.get_terminal_size((80, 24)).columns
    return UNCUT


class Out:
    """Where tables and text go: stdout, at the terminal's width (uncut when piped)."""

    def __init__(self, width: int | None = None) -> None:
        self.width = width or output_width()

    def print(self, item: Grid | str = "") -> None:
        """Print a line of text, or a table laid out to the width. Control characters are
        shown as ``\\xNN`` (newlines and tabs kept): record text never reaches the
        terminal raw."""
        text = item.render(self.width) if isinstance(item, Grid) else item
        typer.echo(printable(text, multiline=True))


def console() -> Out:
    """The output of a command."""
    return Out()


def age(when: datetime | None, now: datetime | None = None) -> str:
    """``45s``, ``12m``, ``3h``, ``5d``: how long ago ``when`` was."""
    if when is None:
        return "-"
    seconds = max(((now or utcnow()) - when).total_seconds(), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


class Grid:
    """Rows of text laid out to fit ``width`` columns. A header ending in ``>`` is a
    number (right aligned, never cut), one ending in ``!`` is never cut (ids); the
    others are cut with an ellipsis when needed, the ``flexible`` one first."""

    GAP = 2
    MIN = 6

    def __init__(self, *headers: str, flexible: int = -1, show_header: bool = True) -> None:
        self.headers = [h.rstrip(">!") for h in headers]
        self.numeric = [h.endswith(">") for h in headers]
        self.fixed = [h.endswith((">", "!")) for h in headers]
        self.flexible = flexible % len(headers)
        self.show_header = show_header
        self.rows: list[list[str] | None] = []

    def add_row(self, *cells: str) -> None:
        """Add one row of cells (already formatted): blanks collapsed to one space, other
        control characters shown as ``\\xNN`` (before widths are measured)."""
        self.rows.append([printable(" ".join(str(cell).split())) for cell in cells])

    def add_section(self) -> None:
        """Draw a line before the next row."""
        self.rows.append(None)

    def widths(self, width: int) -> list[int]:
        """Natural widths, cut (flexible column first, then the widest) to fit."""
        sizes = [len(h) if self.show_header else 1 for h in self.headers]
        for row in self.rows:
            if row is not None:
                sizes = [max(size, len(cell)) for size, cell in zip(sizes, row, strict=True)]
        gaps = self.GAP * (len(sizes) - 1)
        excess = sum(sizes) + gaps - width
        text = [i for i in range(len(sizes)) if not self.fixed[i]]
        room = width - gaps - sum(s for i, s in enumerate(sizes) if self.fixed[i])
        # Others down to a fair share first (the flexible column counts double), then the
        # flexible one, then anything left down to the minimum.
        share = max(self.MIN, room // (len(text) + 1))
        others = [i for i in text if i != self.flexible]
        floors = [(i, share) for i in others] + [(self.flexible, self.MIN)]
        floors += [(i, self.MIN) for i in others]
        for index, floor in floors:
            if excess > 0 and not self.fixed[index]:
                cut = min(excess, max(sizes[index] - floor, 0))
                sizes[index] -= cut
                excess -= cut
        return sizes

    def render(self, width: int) -> str:
        """The table as lines of text at most ``width`` wide (unless fixed columns are wider)."""
        sizes = self.widths(width)
        rule = "-" * (sum(sizes) + self.GAP * (len(sizes) - 1))
        lines = [self._line(self.headers, sizes), rule] if self.show_header else []
        for row in self.rows:
            lines.append(rule if row is None else self._line(row, sizes))
        return "\n".join(lines)

    def _line(self, cells: Sequence[str], sizes: Sequence[int]) -> str:
        parts = []
        for cell, size, numeric in zip(cells, sizes, self.numeric, strict=True):
            if len(cell) > size:
                cell = cell[: size - 1] + "…"
            parts.append(cell.rjust(size) if numeric else cell.ljust(size))
        return (" " * self.GAP).join(parts).rstrip()


def table(*columns: str, flexible: int = -1, show_header: bool = True) -> Grid:
    """A compact table with these headers (see ``Grid``)."""
    return Grid(*columns, flexible=flexible, show_header=show_header)


def _short(dotted: str) -> str:
    """The last part of a dotted name: ``app.handlers.send_receipt`` -> ``send_receipt``."""
    return dotted.rsplit(".", 1)[-1]


def records_table(
    records: Sequence[DeadLetter], *, with_status: bool = False, died: bool = False
) -> Grid:
    """id, (status,) topic, handler, error, attempts, age (or, with ``died``, the time since
    it died): one line per record. Handler names are printed whole: they are what
    ``--handler`` takes."""
    headers = ("ID!", *(("STATUS",) if with_status else ()), "TOPIC", "HANDLER", "ERROR")
    grid = table(*headers, "ATT>", "DIED>" if died else "AGE>", flexible=len(headers) - 1)
    now = utcnow()
    for record in records:
        error = f"{_short(record.error_type)}: {record.error_message}"
        grid.add_row(
            record.id,
            *((record.status.value,) if with_status else ()),
            record.topic,
            record.handler,
            error,
            str(record.attempts),
            _died(record, now) if died else age(record.created_at, now),
        )
    return grid


def _died(record: DeadLetter, now: datetime) -> str:
    return "-" if record.dead_at is None else age(record.dead_at, now)


def show_record(out: Out, record: DeadLetter) -> None:
    """Every field, the payload pretty-printed, the traceback and the attempt timeline of
    a record already masked (``Redactor.mask``)."""
    data = record.to_dict()
    fields = table("FIELD!", "VALUE", show_header=False)
    for key in (
        "id",
        "status",
        "topic",
        "handler",
        "event_id",
        "key",
        "correlation_id",
        "tenant_id",
        "source",
        "error_type",
        "error_message",
        "fingerprint",
        "attempts",
        "max_attempts",
        "replays",
        "occurred_at",
        "created_at",
        "updated_at",
        "next_attempt_at",
        "dead_at",
        "resolved_at",
    ):
        if data.get(key) is not None:
            fields.add_row(key, str(data[key]))
    out.print(fields)
    for title in ("payload", "headers", "origin", "consumer"):
        if data.get(title) not in (None, {}, []):
            out.print(f"\n{title}:")
            out.print(json.dumps(data[title], indent=2, ensure_ascii=False))
    if record.traceback:
        out.print("\ntraceback:")
        out.print(record.traceback.rstrip())
    out.print("\ntimeline:")
    out.print(timeline_table(data["history"]))


def timeline_table(history: Iterable[dict[str, Any]]) -> Grid:
    """One row per attempt or operator action."""
    grid = table("#>", "AT!", "WHAT", "DETAIL")
    for number, entry in enumerate(history, start=1):
        what = entry["kind"]
        if entry.get("duration") is not None:
            what += f" ({entry['duration'] * 1000:.0f} ms)"
        detail = entry.get("error_type") or ""
        if entry.get("error_message"):
            detail += f": {entry['error_message']}"
        if entry.get("detail"):
            detail = (detail + " " if detail else "") + json.dumps(entry["detail"], default=str)
        grid.add_row(str(number), str(entry["at"])[:19].replace("T", " "), what, detail)
    return grid


def stats_table(stats: Stats) -> Grid:
    """Counts by topic x status, the oldest dead letter's age, new dead letters."""
    grid = table(
        "TOPIC",
        *(f"{STATUS_HEADERS[s]}>" for s in STATUS_ORDER),
        "OLDEST>",
        "1H>",
        "24H>",
        flexible=0,
    )
    now, totals = utcnow(), [0] * len(STATUS_ORDER)
    for topic in sorted(stats.counts):
        counts = [stats.counts[topic].get(status, 0) for status in STATUS_ORDER]
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        grid.add_row(
            topic,
            *(f"{n:,}" for n in counts),
            age(stats.oldest_dead_at.get(topic), now),
            f"{stats.new_dead_last_hour.get(topic, 0):,}",
            f"{stats.new_dead_last_day.get(topic, 0):,}",
        )
    grid.add_section()
    grid.add_row(
        "all",
        *(f"{n:,}" for n in totals),
        "",
        f"{sum(stats.new_dead_last_hour.values()):,}",
        f"{sum(stats.new_dead_last_day.values()):,}",
    )
    return grid


def groups_table(groups: Sequence[Group]) -> Grid:
    """One row per error group, biggest first."""
    grid = table("GROUP!", "COUNT>", "TOPIC", "HANDLER", "ERROR", "FIRST>", "LAST>", flexible=4)
    now = utcnow()
    for group in groups:
        grid.add_row(
            group.fingerprint,
            f"{group.count:,}",
            group.topic,
            group.handler,
            f"{_short(group.error_type)}: {group.sample_message}",
            age(group.first_seen, now),
            age(group.last_seen, now),
        )
    return grid


def audit_table(entries: Sequence[AuditEntry]) -> Grid:
    """Who did what, when, to how many records."""
    grid = table("AT!", "ACTOR", "ACTION", "COUNT>", "DETAIL")
    for entry in entries:
        detail = {k: v for k, v in entry.detail.items() if k != "original_payloads"}
        grid.add_row(
            entry.at.strftime("%Y-%m-%d %H:%M:%S"),
            entry.actor,
            entry.action,
            f"{entry.count:,}",
            json.dumps(detail, default=str),
        )
    return grid


def show_plan(out: Out, plan: ReplayPlan) -> None:
    """The dry-run view of a replay: count, by topic, by group, a few samples."""
    out.print(f"would replay {plan.count:,} dead letters")
    if plan.guarded:
        out.print(
            f"left out: {plan.guarded:,} already replayed the maximum number of times "
            "(--force includes them)"
        )
    if plan.by_topic:
        grid = table("TOPIC", "COUNT>", flexible=0)
        for topic, count in plan.by_topic.items():
            grid.add_row(topic, f"{count:,}")
        out.print(grid)
    if plan.groups:
        out.print(groups_table(plan.groups))
    if plan.samples:
        out.print("samples:")
        out.print(records_table(plan.samples))
