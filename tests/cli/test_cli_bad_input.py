"""CLI inputs that used to print a traceback: each is one line on stderr and exit 2, and
config mistakes that were accepted silently are errors naming the file, the key and the
closest valid name."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.cli_support import Cli
from tests.factories import make_record

DEEP = '{"a":' * 600 + "1" + "}" * 600


def _one_line_exit_2(result: object) -> str:
    output = str(getattr(result, "output", ""))
    assert getattr(result, "exit_code", None) == 2, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("patch", "says"),
    [
        ('{"a": NaN}', "NaN"),
        ('{"a": Infinity}', "Infinity"),
        ('{"a": 1e999}', "too large"),
        ('{"a": "\\ud800"}', "lone surrogate"),
        ('{"a": "\\u0000"}', "NUL"),
        (DEEP, "nested more than 100"),
    ],
)
def test_bad_patches_are_one_line(cli: Cli, patch: str, says: str) -> None:
    """A --patch the store could not keep is refused before anything changes."""
    [record] = cli.seed(1)
    line = _one_line_exit_2(cli("retry", record.id, "--patch", patch))
    assert says in line
    assert cli.get(record.id) == record


def test_a_patch_file_that_is_not_utf8_is_one_line(cli: Cli) -> None:
    """``--patch @FILE`` with bytes that are not UTF-8 names the file."""
    [record] = cli.seed(1)
    path = Path(cli.workdir) / "patch.json"
    path.write_bytes(b'{"a": "\xff"}')
    assert "not UTF-8" in _one_line_exit_2(cli("retry", record.id, "--patch", f"@{path}"))


def test_a_corrupt_sqlite_file_is_one_line(cli: Cli) -> None:
    """A store file that is not a database is bad input, not an outage to wait for."""
    cli.db.write_bytes(b"this is not a database, it is a shopping list " * 40)
    assert "not a SQLite database" in _one_line_exit_2(cli("stats"))


def test_a_config_that_is_not_utf8_is_one_line(cli: Cli) -> None:
    """A config file with bytes that are not UTF-8 names the file and the byte."""
    path = Path(cli.workdir) / "redrive.toml"
    path.write_bytes(b'redact = ["\xff"]\n')
    line = _one_line_exit_2(cli("--config", str(path), "stats"))
    assert str(path) in line and "UTF-8" in line


def test_a_huge_max_replays_is_one_line(cli: Cli) -> None:
    """``max_replays = 10**30`` is a config error, not an overflow in the store."""
    cli.seed(1)
    path = Path(cli.workdir) / "redrive.toml"
    path.write_text(f"max_replays = {10**30}\n")
    line = _one_line_exit_2(cli("--config", str(path), "retry", "--all", "--yes"))
    assert "max_replays" in line


def test_export_to_a_directory_is_one_line(cli: Cli) -> None:
    """``export -o DIR`` says it is a directory."""
    cli.seed(1)
    folder = Path(cli.workdir) / "out"
    folder.mkdir()
    assert "is a directory" in _one_line_exit_2(cli("export", "-o", str(folder)))


@pytest.mark.parametrize("option", ["--search", "--topic", "--handler", "--group"])
def test_a_nul_in_a_filter_is_one_line(cli: Cli, option: str) -> None:
    """A NUL in a filter is refused before the store is asked (PostgreSQL cannot hold it)."""
    cli.seed(1)
    assert "NUL" in _one_line_exit_2(cli("list", option, "a\x00b"))


@pytest.mark.parametrize(
    ("toml", "key", "closest"),
    [
        ('redcat = ["password"]\n', "redcat", "redact"),
        ("[polcy]\nmax_attempts = 3\n", "polcy", "policy"),
        ("[policy]\nmax_atempts = 3\n", "policy.max_atempts", "max_attempts"),
        ("[store]\nurll = 'sqlite:///x.db'\n", "store.urll", "url"),
        ("[handlers.h]\npolicyy = {}\n", "handlers.h.policyy", "policy"),
    ],
)
def test_unknown_config_keys_name_the_closest(cli: Cli, toml: str, key: str, closest: str) -> None:
    """A typo in the config is an error naming the file, the key and the closest name."""
    path = Path(cli.workdir) / "redrive.toml"
    path.write_text(toml)
    line = _one_line_exit_2(cli("--config", str(path), "stats"))
    assert str(path) in line and key in line and f"did you mean {closest!r}" in line


def test_a_handler_table_without_a_policy_is_an_error(cli: Cli) -> None:
    """``[handlers.X]`` alone (no ``.policy``) would change nothing: it is refused."""
    path = Path(cli.workdir) / "redrive.toml"
    path.write_text('[handlers."receipts.send"]\n')
    line = _one_line_exit_2(cli("--config", str(path), "stats"))
    assert "handlers.receipts.send" in line and "policy" in line


def test_feature_tables_are_valid(cli: Cli, tmp_path: Path) -> None:
    """Tables the features read (api, alerts) and the transports' (nats, kafka) load."""
    cli.add(make_record())
    path = Path(cli.workdir) / "redrive.toml"
    path.write_text(
        '[api]\nmax_page = 10\n[alerts]\n[nats]\nurl = "nats://127.0.0.1:4222"\n'
        '[kafka]\nbootstrap_servers = "127.0.0.1:9092"\n'
    )
    assert cli("--config", str(path), "stats").exit_code == 0
