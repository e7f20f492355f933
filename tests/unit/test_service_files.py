"""The service's files: export formats, import checks, and archive recovery."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from redrive.models import Status, utcnow
from redrive.service import DeadLetterQueue, Filter, FormatError
from redrive.service.archive import ArchiveFile
from redrive.service.formats import read_records
from redrive.stores.base import Change
from redrive.stores.sqlite import SQLiteStore
from redrive.testing import MemoryStore
from tests.factories import make_record


def test_json_export_is_one_record_per_line(memory_store: MemoryStore) -> None:
    """A JSON export is a valid array with one record per line (so imports stream it)."""
    memory_store.add([make_record() for _ in range(3)])
    out = io.StringIO()
    DeadLetterQueue(memory_store).export(out, fmt="json")
    lines = out.getvalue().splitlines()
    assert len(json.loads(out.getvalue())) == 3
    assert (lines[0], lines[-1], len(lines)) == ("[", "]", 5)


def test_empty_json_export_is_an_empty_array(memory_store: MemoryStore) -> None:
    """Exporting nothing as JSON gives ``[]``."""
    out = io.StringIO()
    DeadLetterQueue(memory_store).export(out, fmt="json")
    assert json.loads(out.getvalue()) == []


def test_pretty_printed_json_imports(memory_store: MemoryStore, tmp_path: Path) -> None:
    """A hand-edited, indented JSON array of records imports too."""
    record = make_record()
    path = tmp_path / "edited.json"
    path.write_text(json.dumps([record.to_dict()], indent=4))
    assert DeadLetterQueue(memory_store).import_(path).changed == 1


def test_csv_cannot_be_imported(tmp_path: Path) -> None:
    """Importing a CSV export says to use jsonl instead."""
    path = tmp_path / "x.csv"
    path.write_text("id\n1\n")
    with pytest.raises(FormatError, match="export as jsonl"):
        list(read_records(path))


def test_missing_field_names_the_line(tmp_path: Path) -> None:
    """A record without a required field is reported with its line and field."""
    data = make_record().to_dict()
    del data["handler"]
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(data) + "\n")
    with pytest.raises(FormatError, match=r"x.jsonl:1: missing field 'handler'"):
        list(read_records(path))


def test_retrying_records_come_back_scheduled(memory_store: MemoryStore, tmp_path: Path) -> None:
    """A record exported mid-retry is restored as scheduled (its lease is not exported)."""
    record = make_record(status=Status.RETRYING)
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(record.to_dict()) + "\n")
    DeadLetterQueue(memory_store).import_(path)
    restored = memory_store.get(record.id)
    assert restored is not None
    assert (restored.status, restored.next_attempt_at) == (Status.SCHEDULED, record.updated_at)


def test_gzip_archive_recovers_from_a_torn_member(tmp_path: Path) -> None:
    """A gzip archive cut inside its last batch is cut back to the batches before it."""
    path = tmp_path / "a.jsonl.gz"
    first, second = [make_record() for _ in range(2)], [make_record() for _ in range(2)]
    archive = ArchiveFile(path)
    archive.append(first)
    size = path.stat().st_size
    archive.append(second)
    path.write_bytes(path.read_bytes()[:-5])
    assert [i for i, _ in archive.recover()] == [r.id for r in first]
    assert path.stat().st_size == size
    lines = gzip.decompress(path.read_bytes()).splitlines()
    assert [json.loads(line)["id"] for line in lines] == [r.id for r in first]


def test_archive_finishes_what_a_killed_run_left(memory_store: MemoryStore, tmp_path: Path) -> None:
    """Records already in the archive but still in the store are deleted, not rewritten."""
    records = [make_record() for _ in range(3)]
    memory_store.add(records)
    path = tmp_path / "a.jsonl"
    ArchiveFile(path).append(records[:2])  # a run killed after the fsync, before the delete
    result = DeadLetterQueue(memory_store).archive(path)
    assert result.changed == 3
    assert len(path.read_text().splitlines()) == 3
    assert memory_store.count(Filter()) == 0


def test_archive_keeps_a_record_replayed_while_it_was_written(
    sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    """A record that changes between the read and the delete stays in the store."""

    dlq = DeadLetterQueue(sqlite_store)
    records = [make_record(), make_record()]
    sqlite_store.add(records)
    original_find = sqlite_store.find

    def find_then_replay(where, *, limit, cursor=None, sort="-created"):  # type: ignore[no-untyped-def]
        page = original_find(where, limit=limit, cursor=cursor, sort=sort)
        if where.ids:  # the archive has read its batch: an operator replays one record now
            replay = Change(
                to=Status.SCHEDULED, from_statuses=(Status.DEAD,), now=utcnow(), replay=True
            )
            sqlite_store.transition([records[0].id], replay)
        return page

    sqlite_store.find = find_then_replay  # type: ignore[method-assign]
    result = dlq.archive(tmp_path / "a.jsonl", where=Filter(statuses=(Status.DEAD,)))
    sqlite_store.find = original_find  # type: ignore[method-assign]
    assert (result.matched, result.changed) == (2, 1)
    assert sqlite_store.get(records[0].id).status == Status.SCHEDULED  # type: ignore[union-attr]
    assert sqlite_store.get(records[1].id) is None
