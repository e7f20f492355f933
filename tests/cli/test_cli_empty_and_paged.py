"""The read commands on an empty store or past one page, and the file commands' refusals
of an output that cannot be written: each says what it means in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.cli_support import Cli


def test_stats_groups_and_audit_of_an_empty_store(cli: Cli) -> None:
    """An empty store is said to be empty, not shown as empty tables."""
    assert "the store is empty" in cli("stats").stdout
    assert "no error groups match" in cli("groups").stdout
    assert "no audit entries" in cli("audit").stdout
    assert "no audit entries match" in cli("audit", "--by", "nobody").stdout


def test_list_and_audit_name_the_cursor_of_the_next_page(cli: Cli) -> None:
    """With more rows than --limit, list and audit end with the ``--cursor`` to go on."""
    records = cli.seed(3)
    listed = cli("list", "--limit", "2", COLUMNS="200")
    assert listed.exit_code == 0, listed.output
    assert "more: --cursor" in listed.stdout
    for record in records:
        assert cli("resolve", record.id).exit_code == 0
    audited = cli("audit", "--limit", "2", COLUMNS="200")
    assert "more: --cursor" in audited.stdout
    cursor = audited.stdout.split("more: --cursor", 1)[1].split()[0]
    rest = json.loads(cli("--json", "audit", "--limit", "2", "--cursor", cursor).stdout)
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None


def test_export_to_a_missing_directory_is_refused(cli: Cli, tmp_path: Path) -> None:
    """--output in a directory that does not exist: exit 2 naming it; no file appears."""
    cli.seed(1)
    target = tmp_path / "nowhere" / "out.jsonl"
    result = cli("export", "--output", str(target))
    assert result.exit_code == 2
    assert f"--output: no directory {target.parent}" in result.stderr
    assert not target.parent.exists()


def test_export_gz_writes_a_gzip_file(cli: Cli, tmp_path: Path) -> None:
    """--output FILE.gz writes gzip, complete once the command returns."""
    import gzip

    [record] = cli.seed(1)
    target = tmp_path / "out.jsonl.gz"
    result = cli("export", "--output", str(target))
    assert result.exit_code == 0, result.output
    [line] = gzip.decompress(target.read_bytes()).decode().splitlines()
    assert json.loads(line)["id"] == record.id


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("archive.json", "--to: expected a .jsonl or .jsonl.gz file name, got 'archive.json'"),
        ("missing/archive.jsonl", "--to: no directory"),
    ],
)
def test_archive_refuses_a_file_it_cannot_append_to(
    cli: Cli, tmp_path: Path, name: str, message: str
) -> None:
    """archive --to with the wrong suffix or in a missing directory: exit 2, nothing
    deleted from the store."""
    [record] = cli.seed(1)
    assert cli("resolve", record.id).exit_code == 0
    result = cli("archive", "--to", str(tmp_path / name), "--older-than", "0s")
    assert result.exit_code == 2
    assert message in result.stderr
    assert cli.get(record.id) is not None


def test_archive_json_says_what_moved(cli: Cli, tmp_path: Path) -> None:
    """--json archive prints how many were archived and deleted, and the file."""
    [record] = cli.seed(1)
    assert cli("resolve", record.id).exit_code == 0
    target = tmp_path / "archive.jsonl"
    result = cli("--json", "archive", "--to", str(target), "--older-than", "0s", "--yes")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"archived": 1, "deleted": 1, "file": str(target)}
    assert cli.get(record.id) is None
