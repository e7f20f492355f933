"""Time-sortable ids."""

from __future__ import annotations

import uuid

from redrive._ids import new_id


def test_ids_are_uuid7_and_strictly_increasing() -> None:
    """A burst of ids is strictly increasing and each is a version-7 UUID."""
    ids = [new_id() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert {uuid.UUID(i).version for i in ids[:100]} == {7}
