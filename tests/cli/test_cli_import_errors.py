"""``redrive import`` of malformed files: one line on stderr, exit code 2, nothing imported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.cli_support import Cli
from tests.factories import make_record


@pytest.mark.parametrize(
    "change",
    [
        {"history": [1]},
        {"created_at": 123},
        {"id": "x" * 65},
        {"created_at": "0001-01-01T00:00:00+23:59"},
    ],
    ids=["history entry", "time", "long id", "time out of range"],
)
def test_malformed_record_is_one_line_exit_2(
    cli: Cli, tmp_path: Path, change: dict[str, Any]
) -> None:
    """A malformed record is reported on one line naming the file and line; nothing imported."""
    good = make_record()
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps(good.to_dict()) + "\n" + json.dumps({**make_record().to_dict(), **change}) + "\n"
    )
    result = cli("import", str(path))
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {path}:2: invalid record: ")
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output
    assert cli.get(good.id) is None
