"""Error groups through the service."""

from __future__ import annotations

from redrive import DeadLetterQueue
from redrive.stores.sqlite import SQLiteStore
from tests.factories import make_record


def test_group_samples_are_live_records(sqlite_store: SQLiteStore) -> None:
    """After the newest record of a group is deleted, the group's sample is another one."""
    older, newest = make_record(fingerprint="a" * 16), make_record(fingerprint="a" * 16)
    sqlite_store.add([older, newest])
    dlq = DeadLetterQueue(sqlite_store)
    assert dlq.groups()[0].sample_id == newest.id
    dlq.delete([newest.id])
    [group] = dlq.groups()
    assert (group.count, group.sample_id) == (1, older.id)
