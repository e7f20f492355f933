"""Time-sortable ids."""

from __future__ import annotations

import os
import uuid

from redrive._ids import new_id


def test_ids_are_uuid7_and_strictly_increasing() -> None:
    """A burst of ids is strictly increasing and each is a version-7 UUID."""
    ids = [new_id() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert {uuid.UUID(i).version for i in ids[:100]} == {7}


def _forked_burst() -> tuple[int, int]:
    """Fork a child that writes 2,000 fresh ids to a pipe and leaves at once (``os._exit``:
    nothing of the parent's threads, atexit handlers or buffers runs in it)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        with os.fdopen(write_end, "w") as out:
            out.write("\n".join(new_id() for _ in range(2_000)))
        os._exit(0)
    os.close(write_end)
    return pid, read_end


def test_forked_processes_never_share_ids() -> None:
    """Ids made at the same time in forked processes are all distinct.

    Plain ``os.fork`` rather than a multiprocessing pool: a pool's own threads, forked from
    a test worker that has threads of its own (pytest-xdist's, coverage's), can deadlock."""
    new_id()  # the parent's generator state exists before the fork
    children = [_forked_burst() for _ in range(4)]
    every = [new_id() for _ in range(2_000)]
    for pid, read_end in children:
        with os.fdopen(read_end) as got:
            every += got.read().split("\n")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert len(every) == 5 * 2_000
    assert len(set(every)) == len(every)
