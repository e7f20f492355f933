"""What the audit trail records about changes made through the service."""

from __future__ import annotations

from redrive import DeadLetterQueue
from redrive.service import make_filter
from redrive.stores.sqlite import SQLiteStore
from tests.factories import make_record


def test_delete_is_audited_with_its_ids_and_count(sqlite_store: SQLiteStore) -> None:
    """Deleting by id names every deleted record and the count in the audit entry."""
    records = [make_record() for _ in range(3)]
    sqlite_store.add(records)
    dlq = DeadLetterQueue(sqlite_store)
    dlq.delete([r.id for r in records[:2]], actor="me")
    [entry] = dlq.audit(limit=1)
    assert entry.action == "delete" and entry.count == 2
    assert sorted(entry.detail["ids"]) == sorted(r.id for r in records[:2])
    assert entry.detail["deleted"] == 2


def test_delete_by_filter_is_audited_with_its_ids(sqlite_store: SQLiteStore) -> None:
    """Deleting by filter names the deleted records too (up to the cap)."""
    records = [make_record(topic="t.a") for _ in range(2)] + [make_record(topic="t.b")]
    sqlite_store.add(records)
    dlq = DeadLetterQueue(sqlite_store)
    dlq.delete(where=make_filter(topic="t.a"))
    [entry] = dlq.audit(limit=1)
    assert sorted(entry.detail["ids"]) == sorted(r.id for r in records[:2])
    assert entry.detail["filter"]
