"""Hooks given to the service hear of every operator change (``on_change``), and a hook
that raises or lacks a method never stops the change nor the other hooks."""

from __future__ import annotations

import logging

import pytest

from redrive.hooks import Hook
from redrive.models import Status
from redrive.service import DeadLetterQueue
from redrive.testing import MemoryStore
from tests.factories import make_record


class Recorder(Hook):
    """Notes each change it hears of."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, int, str]] = []

    def on_change(self, action: str, count: int, actor: str) -> None:
        self.changes.append((action, count, actor))


class Broken(Hook):
    """A hook whose on_change always fails."""

    def on_change(self, action: str, count: int, actor: str) -> None:
        raise RuntimeError("metrics exporter down")


class OnlyDead:
    """A duck-typed hook with one method: the others are skipped, not called."""

    def __init__(self) -> None:
        self.dead = 0

    def on_dead(self, record: object) -> None:
        self.dead += 1


def test_changes_reach_every_hook_past_a_broken_one(
    memory_store: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Resolving two records tells each hook once, with the count and actor; the broken
    hook's error is logged, the records are resolved, and a hook without on_change is
    skipped."""
    records = [make_record(), make_record()]
    memory_store.add(records)
    first, second, partial = Broken(), Recorder(), OnlyDead()
    dlq = DeadLetterQueue(memory_store, actor="ana", hooks=[first, second, partial])  # type: ignore[list-item]
    with caplog.at_level(logging.ERROR, logger="redrive.hooks"):
        result = dlq.resolve([r.id for r in records])
    assert result.changed == 2
    assert second.changes == [("resolve", 2, "ana")]
    assert partial.dead == 0
    assert all(dlq.get(r.id).status is Status.RESOLVED for r in records)
    [logged] = [r for r in caplog.records if r.name == "redrive.hooks"]
    assert "failed in on_change" in logged.getMessage()
