"""``redrive serve`` checks the ``[api]`` table before it listens: a bad value is one line
naming the file and the key, exit 2, and no server starts (the real script: the error is
raised while the app is built, outside the command's own error handling)."""

from __future__ import annotations

import pytest

from tests.cli.cli_support import Cli


@pytest.mark.parametrize(
    ("table", "key", "expected"),
    [
        ("api = 3\n", "api", "expected a table, got 3"),
        ("[api]\nmetrics_auth = 'yes'\n", "api.metrics_auth", "'yes'"),
        ("[api]\narchive_dir = ''\n", "api.archive_dir", "expected a directory path, got ''"),
        ("[api]\nmax_pgae = 10\n", "api.max_pgae", "got an unknown key"),
        ("[api]\nsession_hours = true\n", "api.session_hours", "True"),
    ],
)
def test_a_bad_api_table_stops_serve_before_it_listens(
    cli: Cli, table: str, key: str, expected: str
) -> None:
    """Each bad ``[api]`` value is refused with the file, the key and what was wrong."""
    config = cli.workdir / "redrive.toml"
    config.write_text(table)
    result = cli.run("--config", str(config), "serve", "--port", "1")
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and str(config) in line
    assert key in line and expected in line
    assert "redrive serving" not in result.stderr
