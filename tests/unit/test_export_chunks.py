"""Export streams: chunks are bounded by size as well as by record count."""

from __future__ import annotations

import json

import pytest

from redrive._clock import SystemClock
from redrive.service import Filter
from redrive.service.formats import ExportStream
from redrive.testing import MemoryStore
from tests.factories import make_record


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_big_records_are_yielded_in_chunks_of_about_a_mebibyte(
    fmt: str, memory_store: MemoryStore
) -> None:
    """Ten records of 300 KB each come in three chunks, none much over 1 MiB."""
    memory_store.add([make_record(payload={"blob": "x" * 300_000}) for _ in range(10)])
    progress: list[int] = []
    stream = ExportStream(memory_store, SystemClock(), Filter(), fmt, None, progress.append)
    chunks = list(stream)
    assert len([chunk for chunk in chunks if chunk]) == 3
    assert max(len(chunk) for chunk in chunks) < ExportStream.CHUNK_CHARS + 310_000
    assert (stream.count, sum(progress), stream.done) == (10, 10, True)
    if fmt == "jsonl":
        lines = "".join(chunks).splitlines()
        assert [len(json.loads(line)["payload"]["blob"]) for line in lines] == [300_000] * 10


def test_small_records_still_come_a_thousand_at_a_time(memory_store: MemoryStore) -> None:
    """Small records are still yielded in chunks of CHUNK records."""
    memory_store.add([make_record() for _ in range(2500)])
    chunks = list(ExportStream(memory_store, SystemClock(), Filter(), "jsonl", None))
    assert [chunk.count("\n") for chunk in chunks] == [1000, 1000, 500]
