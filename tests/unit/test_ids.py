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


def _burst(_: int) -> list[str]:
    return [new_id() for _ in range(2_000)]


def test_forked_processes_never_share_ids() -> None:
    """Ids made at the same time in forked processes are all distinct."""
    import multiprocessing

    new_id()  # the parent's generator state exists before the fork
    with multiprocessing.get_context("fork").Pool(4) as pool:
        bursts = pool.map(_burst, range(4))
    every = [i for burst in bursts for i in burst]
    assert len(set(every)) == len(every)
