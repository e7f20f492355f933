"""Retention through the service: per-topic purges and the dead-letter timeline."""

from __future__ import annotations

from datetime import timedelta

from redrive import DeadLetterQueue, Status
from redrive.models import utcnow
from redrive.stores.sqlite import SQLiteStore
from tests.factories import make_record


def test_retention_purges_old_records_per_topic(sqlite_store: SQLiteStore) -> None:
    """Each topic keeps records younger than its retention; other topics are untouched."""
    old = utcnow() - timedelta(days=10)
    expired = make_record(topic="a", created_at=old)
    kept = [make_record(topic="a"), make_record(topic="b", created_at=old)]
    sqlite_store.add([expired, *kept])
    results = DeadLetterQueue(sqlite_store).apply_retention({"a": timedelta(days=7)})
    assert results["a"].changed == 1
    assert sqlite_store.get(expired.id) is None
    assert all(sqlite_store.get(r.id) is not None for r in kept)


def test_retention_prunes_the_timeline_even_without_topic_rules(sqlite_store: SQLiteStore) -> None:
    """The per-minute timeline keeps 8 days, whatever the topics' retention."""
    sqlite_store.add([make_record(created_at=utcnow() - timedelta(days=9)), make_record()])
    DeadLetterQueue(sqlite_store).apply_retention({})
    rows = sqlite_store.dead_timeline(utcnow() - timedelta(days=30))
    assert sum(n for _, _, n in rows) == 1
    assert DeadLetterQueue(sqlite_store).count(status=Status.DEAD) == 2  # records stay
