"""The import and archive routes on bad files: 422 problems, nothing changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from redrive.models import Status
from tests.api.conftest import Api, problem
from tests.factories import make_record
from tests.unit.test_archive_recovery import corrupt_archive


def archive_dir(tmp_path: Path) -> Path:
    """The API's archive directory (see ``api_settings``), created."""
    folder = tmp_path / "archive"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.mark.parametrize(
    "change",
    [{"history": [1]}, {"created_at": 123}, {"id": "x" * 5000}, {"origin": [1, 2]}],
    ids=["history entry", "time", "long id", "origin"],
)
def test_import_of_a_malformed_record_is_422(
    api: Api, tmp_path: Path, change: dict[str, Any]
) -> None:
    """A malformed record is a 422 naming the line, and nothing is imported."""
    good = make_record()
    lines = [json.dumps(good.to_dict()), json.dumps({**make_record().to_dict(), **change})]
    (archive_dir(tmp_path) / "bad.jsonl").write_text("\n".join(lines) + "\n")
    body = problem(api.admin.post("/api/v1/import", json={"file": "bad.jsonl"}), 422)
    assert ":2: invalid record: " in body["detail"]
    assert api.service.count(status=Status.DEAD) == 0


def test_archive_into_a_corrupt_gz_is_422_and_changes_nothing(api: Api, tmp_path: Path) -> None:
    """A corrupt middle member is a 422; the file keeps every byte and the records stay."""
    records = api.add(2, topic="zz")
    path = archive_dir(tmp_path) / "old.jsonl.gz"
    data, _ = corrupt_archive(path)
    body = {"file": "old.jsonl.gz", "filter": {"topic": "zz"}}
    detail = problem(api.admin.post("/api/v1/archive", json=body), 422)["detail"]
    assert "is corrupt at byte" in detail
    assert path.read_bytes() == data
    assert [api.service.get(r.id).status for r in records] == [Status.DEAD] * 2


@pytest.mark.parametrize(
    ("name", "content", "start"),
    [
        (
            "hdr.jsonl",
            json.dumps({**make_record().to_dict(), "headers": "abc"}) + "\n",
            "hdr.jsonl:1: invalid record: ",
        ),
        ("bad.jsonl", "not json\n", "bad.jsonl:1: not valid JSON"),
        ("torn.jsonl.gz", "\x1f\x8b\x08 not gzip", "torn.jsonl.gz: cannot read"),
    ],
)
def test_import_errors_name_only_the_file(
    api: Api, tmp_path: Path, name: str, content: str, start: str
) -> None:
    """A 422 of the import route names the file as the request gave it, never the server path."""
    folder = archive_dir(tmp_path)
    (folder / name).write_text(content)
    detail = problem(api.admin.post("/api/v1/import", json={"file": name}), 422)["detail"]
    assert detail.startswith(start)
    assert str(folder) not in detail and str(tmp_path) not in detail


def test_archive_errors_name_only_the_file(api: Api, tmp_path: Path) -> None:
    """A 422 of the archive route names the file as the request gave it, never the server path."""
    api.add(1, topic="zz")
    corrupt_archive(archive_dir(tmp_path) / "old.jsonl.gz")
    body = {"file": "old.jsonl.gz", "filter": {"topic": "zz"}}
    detail = problem(api.admin.post("/api/v1/archive", json=body), 422)["detail"]
    assert detail.startswith("archive old.jsonl.gz is corrupt at byte ")
    assert str(tmp_path) not in detail
