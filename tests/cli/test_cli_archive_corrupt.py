"""``redrive archive`` into a corrupt ``.gz`` archive: refused, nothing changed."""

from __future__ import annotations

from pathlib import Path

from redrive.models import Status
from tests.cli.cli_support import Cli
from tests.factories import make_record
from tests.unit.test_archive_recovery import corrupt_archive


def test_archive_into_a_corrupt_gz_is_exit_2_and_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    """A corrupt middle member is one line (exit 2); the file and the store stay as they were."""
    records = cli.add(*(make_record(status=Status.RESOLVED) for _ in range(3)))
    target = tmp_path / "old.jsonl.gz"
    data, first = corrupt_archive(target)
    result = cli("archive", "--to", str(target), "--status", "resolved", "--yes")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: archive {target} is corrupt at byte {first} ")
    assert len(result.stderr.splitlines()) == 1
    assert target.read_bytes() == data
    assert cli.statuses(records) == ["resolved"] * 3
