"""The overview's chart: dead letters over time as bars, drawn as inline SVG (no library)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta

WIDTH, HEIGHT, LEFT, BOTTOM = 720, 180, 40, 22

RANGES = {"24h": (timedelta(hours=24), 24), "7d": (timedelta(days=7), 28)}
"""Range name: (span, number of bars): an hour a bar, or six hours a bar."""


@dataclasses.dataclass(frozen=True, slots=True)
class Bar:
    """One bar: its box and what it counts."""

    x: float
    y: float
    width: float
    height: float
    count: int
    label: str


@dataclasses.dataclass(frozen=True, slots=True)
class Chart:
    """Everything the template needs to draw the SVG."""

    bars: list[Bar]
    peak: int
    total: int
    ticks: list[tuple[float, str]]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: int = BOTTOM


def build(points: Sequence[tuple[datetime, str, int]], now: datetime, range_name: str) -> Chart:
    """Bars for the records that became dead per bin over the range ending ``now``."""
    span, bins = RANGES[range_name]
    start, step = now - span, span / bins
    counts = [0] * bins
    for minute, _topic, n in points:
        index = int((minute - start) / step)
        if 0 <= index < bins:
            counts[index] += n
    peak = max(counts) or 1
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - BOTTOM - 8
    slot = plot_w / bins
    bars = []
    for i, n in enumerate(counts):
        height = plot_h * n / peak
        when = start + step * i
        bars.append(
            Bar(
                x=LEFT + i * slot + 1,
                y=8 + plot_h - height,
                width=max(slot - 2, 1),
                height=height,
                count=n,
                label=f"{when:%a %H:%M}: {n}",
            )
        )
    fmt = "%H:%M" if range_name == "24h" else "%a %d"
    ticks = [(LEFT + i * slot, f"{start + step * i:{fmt}}") for i in range(0, bins, bins // 4)]
    return Chart(bars=bars, peak=max(counts), total=sum(counts), ticks=ticks)
