"""Masked values never leave through the CLI, human output or ``--json``."""

from __future__ import annotations

from pathlib import Path

from tests.cli.cli_support import Cli
from tests.leaky import SECRET, leaky_record


def _config(cli: Cli) -> str:
    path = Path(cli.workdir) / "redrive.toml"
    path.write_text('redact = ["password"]\n')
    return str(path)


def test_cli_reads_never_show_a_masked_value(cli: Cli) -> None:
    """show, list and groups (with and without --json) print the mask, not the secret."""
    [record] = cli.add(leaky_record())
    config = _config(cli)
    for args in (
        ("show", record.id),
        ("show", record.id, "--json"),
        ("list",),
        ("list", "--json"),
        ("groups",),
        ("groups", "--json"),
        ("retry", "--all", "--dry-run"),
    ):
        result = cli("--config", config, *args, COLUMNS="300")
        assert result.exit_code == 0, (args, result.output)
        assert SECRET not in result.output, args
        assert "***" in result.output or "bad password" in result.output, args


def test_cli_search_cannot_confirm_a_masked_value(cli: Cli) -> None:
    """``list --search`` with the secret finds nothing once the field is masked."""
    cli.add(leaky_record())
    config = _config(cli)
    assert "no records match" in cli("--config", config, "list", "--search", "hunter2").output
    assert (
        "bad password"
        in cli("--config", config, "list", "--search", "password", COLUMNS="300").output
    )
