"""Reading records from export and archive files: every malformed record is a FormatError."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from redrive.service import DeadLetterQueue, FormatError
from redrive.service.formats import read_records
from redrive.testing import MemoryStore
from tests.factories import make_record

AT = "2026-11-01T00:00:00Z"

MALFORMED: dict[str, dict[str, Any]] = {
    "history entry not an object": {"history": [1]},
    "history a string": {"history": "abc"},
    "history entry time a number": {"history": [{"kind": "attempt", "at": 5}]},
    "history detail a list": {"history": [{"at": AT, "detail": [1]}]},
    "history duration a string": {"history": [{"at": AT, "duration": "slow"}]},
    "history error_type a number": {"history": [{"at": AT, "error_type": 5}]},
    "created_at a number": {"created_at": 123},
    "created_at out of range in UTC": {"created_at": "0001-01-01T00:00:00+23:59"},
    "updated_at not a time": {"updated_at": "yesterday"},
    "headers a string": {"headers": "abc"},
    "header value a number": {"headers": {"x": 1}},
    "origin a list": {"origin": [1, 2]},
    "key an object": {"key": {"a": 1}},
    "tenant a list": {"tenant_id": [1]},
    "attempts too large": {"attempts": 2**70},
    "attempts negative": {"attempts": -1},
    "status unknown": {"status": "sleeping"},
    "id a number": {"id": 5},
    "id empty": {"id": ""},
    "id too long": {"id": "x" * 65},
    "id with a slash": {"id": "a/b"},
    "id with an escape": {"id": "a\x1bb"},
}


def write_jsonl(path: Path, *records: dict[str, Any]) -> Path:
    """Write ``records`` one per line to ``path``."""
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


@pytest.mark.parametrize("change", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_record_names_file_and_line(tmp_path: Path, change: dict[str, Any]) -> None:
    """A malformed record on line 2 is a FormatError naming the file and that line."""
    path = write_jsonl(
        tmp_path / "x.jsonl", make_record().to_dict(), {**make_record().to_dict(), **change}
    )
    with pytest.raises(FormatError, match=rf"^{path}:2: invalid record: "):
        list(read_records(path))


@pytest.mark.parametrize("change", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_record_in_a_pretty_json_array(tmp_path: Path, change: dict[str, Any]) -> None:
    """In a hand-edited JSON array, a malformed record is a FormatError naming its item."""
    path = tmp_path / "x.json"
    path.write_text(json.dumps([{**make_record().to_dict(), **change}], indent=2))
    with pytest.raises(FormatError, match=rf"^{path}: item 1: invalid record: "):
        list(read_records(path))


@pytest.mark.parametrize("number", ["1e400", "NaN", "-Infinity"])
def test_non_finite_numbers_are_refused(tmp_path: Path, number: str) -> None:
    """A number no store can keep (1e400, NaN, Infinity) is not valid JSON here."""
    text = json.dumps({**make_record().to_dict(), "payload": {"n": 0}})
    line = text.replace('"n": 0', f'"n": {number}')
    path = tmp_path / "x.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(FormatError, match=rf"^{path}:1: not valid JSON"):
        list(read_records(path))


def test_a_malformed_record_imports_nothing(tmp_path: Path, memory_store: MemoryStore) -> None:
    """The whole file is checked first, so one malformed record leaves the store empty."""
    path = write_jsonl(
        tmp_path / "x.jsonl", make_record().to_dict(), {**make_record().to_dict(), "history": [1]}
    )
    with pytest.raises(FormatError):
        DeadLetterQueue(memory_store).import_(path)
    assert DeadLetterQueue(memory_store).count(status=()) == 0


def test_plausible_ids_and_loose_types_still_import(
    tmp_path: Path, memory_store: MemoryStore
) -> None:
    """A 64-character id, empty containers and null optional fields import as before."""
    record = {
        **make_record().to_dict(),
        "id": "a" * 64,
        "headers": {},
        "origin": None,
        "history": [],
        "replays": None,
        "key": None,
    }
    path = write_jsonl(tmp_path / "x.jsonl", record)
    assert DeadLetterQueue(memory_store).import_(path).changed == 1
    assert memory_store.get("a" * 64) is not None
