"""``redrive export``, ``import`` and ``archive``, including an archive killed mid-way."""

from __future__ import annotations

import csv
import gzip
import json
import signal
import subprocess
from pathlib import Path

import pytest

from redrive.models import Status
from tests.cli.cli_support import REDRIVE, Cli
from tests.factories import ago, make_record
from tests.helpers import wait_for


def dicts(cli: Cli) -> dict[str, dict[str, object]]:
    """Every record of the store, by id, in its JSON shape."""
    store = cli.store()
    try:
        from redrive.stores.base import Filter

        return {r.id: r.to_dict() for r in store.find(Filter(), limit=100_000).items}
    finally:
        store.close()


def archived_ids(path: Path) -> list[str]:
    """Ids in an archive, ignoring a torn last line."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    lines = raw.split(b"\n")
    return [json.loads(line)["id"] for line in lines[:-1] if line]


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_export_import_round_trip_is_identical(cli: Cli, tmp_path: Path, fmt: str) -> None:
    """Exporting every record and importing it into an empty store gives identical records."""
    cli.seed(3, payload={"order": 1, "name": "Zoë"})
    cli.seed(2, status=Status.RESOLVED)
    original = dicts(cli)
    out = tmp_path / f"all.{fmt}"
    assert cli("export", "--format", fmt, "--status", "all", "-o", str(out)).exit_code == 0
    fresh = Cli(db=tmp_path / "fresh.db", workdir=cli.workdir)
    result = fresh("import", str(out))
    assert result.exit_code == 0, result.output
    assert dicts(fresh) == original


def test_import_skips_duplicates(cli: Cli, tmp_path: Path) -> None:
    """Importing records that are already present skips them and says so."""
    cli.seed(2)
    out = tmp_path / "dead.jsonl"
    cli("export", "-o", str(out))
    result = cli("import", str(out), "--json")
    assert json.loads(result.stdout) == {"read": 2, "imported": 0, "skipped": 2}


def test_corrupt_line_imports_nothing(cli: Cli, tmp_path: Path) -> None:
    """A corrupt line is reported with its line number (exit 2) and nothing is imported."""
    source = Cli(db=tmp_path / "source.db", workdir=cli.workdir)
    source.seed(2)
    out = tmp_path / "dead.jsonl"
    source("export", "-o", str(out))
    out.write_text(out.read_text() + '{"id": "broken"\n')
    result = cli("import", str(out))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {out}:3: not valid JSON")
    assert dicts(cli) == {}


def test_import_of_a_missing_file_is_a_usage_error(cli: Cli) -> None:
    """A file that does not exist is a one-line error with exit code 2."""
    result = cli("import", "nope.jsonl")
    assert result.exit_code == 2
    assert "no such file" in result.stderr


def test_csv_keeps_payload_as_json_and_defuses_formulas(cli: Cli) -> None:
    """CSV has one row per record, the payload as JSON, and formula-like text quoted."""
    cli.seed(1, payload={"a": [1, 2]}, error_message="=HYPERLINK(1)")
    result = cli("export", "--format", "csv")
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert json.loads(rows[0]["payload"]) == {"a": [1, 2]}
    assert rows[0]["error_message"] == "'=HYPERLINK(1)"


def test_export_masks_redacted_fields(cli: Cli) -> None:
    """Exports apply the config's redact patterns."""
    cli.seed(1, payload={"password": "hunter2", "user": "ann"})
    config = cli.workdir / "redrive.toml"
    config.write_text('redact = ["password"]\n')
    line = cli("--config", str(config), "export").stdout.strip()
    assert json.loads(line)["payload"] == {"password": "***", "user": "ann"}


def test_unknown_format_is_a_usage_error(cli: Cli) -> None:
    """--format xml is a usage error."""
    assert cli("export", "--format", "xml").exit_code == 2


@pytest.mark.parametrize("name", ["old.jsonl", "old.jsonl.gz"])
def test_archive_moves_old_records_to_a_file(cli: Cli, tmp_path: Path, name: str) -> None:
    """archive writes the old records to the file and deletes only those from the store."""
    old = cli.add(
        *(make_record(status=Status.RESOLVED, created_at=ago(40 * 86400)) for _ in range(3))
    )
    (recent,) = cli.seed(1)
    target = tmp_path / name
    result = cli("archive", "--older-than", "30d", "--to", str(target), "--yes")
    assert result.exit_code == 0, result.output
    assert sorted(archived_ids(target)) == sorted(r.id for r in old)
    assert cli.statuses([*old, recent]) == ["missing"] * 3 + ["dead"]
    assert cli("import", str(target)).exit_code == 0
    assert cli.statuses(old) == ["resolved"] * 3


def test_archive_killed_midway_loses_nothing(cli: Cli, tmp_path: Path) -> None:
    """SIGKILL during an archive leaves each record in the file or the store; a rerun ends it."""
    records = cli.seed(3000)
    wanted = {r.id for r in records}
    target = tmp_path / "archive.jsonl"
    argv = [REDRIVE, "archive", "--to", str(target), "--batch-size", "50", "--yes"]
    process = subprocess.Popen(
        argv, cwd=cli.workdir, env=cli.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for(
        lambda: target.exists() and target.stat().st_size > 0, timeout=30, what="the first batch"
    )
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    in_store = set(dicts(cli))
    in_file = set(archived_ids(target))
    assert in_store, "the archive finished before it could be killed"
    assert in_store | in_file == wanted
    rerun = cli.run("archive", "--to", str(target), "--yes")
    assert rerun.returncode == 0, rerun.stderr
    assert set(dicts(cli)) == set()
    assert set(archived_ids(target)) == wanted


def test_archive_resumes_after_a_torn_line(cli: Cli, tmp_path: Path) -> None:
    """A torn last line (a kill during a write) is cut; its record is still in the store."""
    (kept,) = cli.seed(1)
    target = tmp_path / "a.jsonl"
    target.write_text('{"id": "torn", "top')
    assert cli("archive", "--to", str(target), "--yes").exit_code == 0
    assert archived_ids(target) == [kept.id]
    assert target.read_text().count("\n") == 1
