"""Resuming a gzip archive: a torn tail is cut, a corrupt member is never cut."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from redrive.models import DeadLetter, Status
from redrive.service import DeadLetterQueue, Filter, FormatError
from redrive.service.archive import ArchiveFile
from redrive.testing import MemoryStore
from tests.factories import make_record


def member(records: list[DeadLetter], level: int = 6) -> bytes:
    """One gzip member holding ``records`` as jsonl (what one archive batch writes)."""
    text = "".join(json.dumps(record.to_dict()) + "\n" for record in records)
    return gzip.compress(text.encode(), compresslevel=level)


def corrupt_archive(path: Path, damage: str = "checksum") -> tuple[bytes, int]:
    """Write a valid member, a damaged member, then a valid member; return the bytes and
    where the damaged member starts. ``damage``: a flipped checksum or header byte, or a
    member cut short."""
    first, broken = member([make_record()]), bytearray(member([make_record()]))
    if damage == "checksum":
        broken[-8] ^= 0xFF
    elif damage == "header":
        broken[2] ^= 0xFF
    elif damage == "cut short":
        broken = broken[: len(broken) // 2]
    else:  # stored (level 0) and cut short: the next member reads as its raw data, no error
        broken = bytearray(member([make_record() for _ in range(5)], level=0)[:200])
    data = first + bytes(broken) + member([make_record()])
    path.write_bytes(data)
    return data, len(first)


@pytest.mark.parametrize("damage", ["checksum", "header", "cut short", "stored, cut short"])
def test_corrupt_member_before_more_data_is_left_unchanged(tmp_path: Path, damage: str) -> None:
    """A damaged middle member is a FormatError naming its offset; the file keeps every byte."""
    path = tmp_path / "old.jsonl.gz"
    data, first = corrupt_archive(path, damage)
    with pytest.raises(
        FormatError,
        match=rf"^archive {path} is corrupt at byte {first} .*"
        "it was left unchanged",
    ):
        ArchiveFile(path).recover()
    assert path.read_bytes() == data


def test_archive_into_a_corrupt_file_changes_nothing(
    tmp_path: Path, memory_store: MemoryStore
) -> None:
    """Archiving to a corrupt .gz raises before any record is written or deleted."""
    records = [make_record(status=Status.RESOLVED) for _ in range(3)]
    memory_store.add(records)
    path = tmp_path / "old.jsonl.gz"
    data, _ = corrupt_archive(path)
    with pytest.raises(FormatError, match="is corrupt at byte"):
        DeadLetterQueue(memory_store).archive(path, where=Filter(statuses=(Status.RESOLVED,)))
    assert path.read_bytes() == data
    assert DeadLetterQueue(memory_store).count(status=Status.RESOLVED) == 3


def test_a_torn_last_member_is_still_cut(tmp_path: Path) -> None:
    """A last member that ends early (a kill mid-write) is cut back to the member before."""
    path = tmp_path / "a.jsonl.gz"
    first, second = [make_record()], [make_record(), make_record()]
    path.write_bytes(member(first) + member(second)[:30])
    assert [i for i, _ in ArchiveFile(path).recover()] == [first[0].id]
    assert path.read_bytes() == member(first)
