"""The operator's commands on a PostgreSQL store: the same CLI, another URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redrive.models import Status
from tests.cli.cli_support import Cli

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_cli(tmp_path: Path, postgres_url: str) -> Cli:
    """The CLI on a fresh PostgreSQL database."""
    return Cli(db=tmp_path / "unused.db", workdir=tmp_path, store_url=postgres_url)


def test_triage_replay_and_clean_up(pg_cli: Cli, tmp_path: Path) -> None:
    """list, stats, groups, a group replay, export and import all work on PostgreSQL."""
    bug = pg_cli.seed(3, fingerprint="a" * 16, topic="orders", error_message="boom")
    other = pg_cli.seed(1, fingerprint="b" * 16, topic="payments")

    listed = pg_cli("--json", "list", "--topic", "orders")
    assert listed.exit_code == 0, listed.output
    assert {item["id"] for item in json.loads(listed.output)["items"]} == {r.id for r in bug}

    stats = json.loads(pg_cli("--json", "stats").output)
    assert json.dumps(stats).count('"dead"') >= 1
    groups = json.loads(pg_cli("--json", "groups").output)
    assert [(g["fingerprint"], g["count"]) for g in groups][:2] == [("a" * 16, 3), ("b" * 16, 1)]

    replay = pg_cli("retry", "--group", "a" * 16, "--yes", "--actor", "ops")
    assert replay.exit_code == 0, replay.output
    assert pg_cli.statuses(bug) == [Status.SCHEDULED.value] * 3
    assert pg_cli.statuses(other) == [Status.DEAD.value]

    export = tmp_path / "dead.jsonl"
    assert pg_cli("export", "--format", "jsonl", "--output", str(export)).exit_code == 0
    assert len(export.read_text().splitlines()) == 1
    assert pg_cli("delete", other[0].id, "--yes").exit_code == 0
    restored = pg_cli("import", str(export))
    assert restored.exit_code == 0, restored.output
    assert pg_cli.statuses(other) == [Status.DEAD.value]

    audit = json.loads(pg_cli("--json", "audit").output)
    entries = audit["items"] if isinstance(audit, dict) else audit
    assert {"retry", "export", "delete", "import"} <= {entry["action"] for entry in entries}


def test_unreachable_store_is_one_line(tmp_path: Path) -> None:
    """A PostgreSQL URL nobody answers is a one-line error, not a traceback."""
    cli = Cli(
        db=tmp_path / "unused.db",
        workdir=tmp_path,
        store_url="postgresql://nobody:secret@127.0.0.1:9/none?retry_timeout=0.5",
    )
    result = cli.run("list")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "secret" not in result.stderr
    assert result.stderr.strip().startswith("error:")
