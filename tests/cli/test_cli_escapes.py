"""Record text with terminal control characters is shown escaped, never sent raw."""

from __future__ import annotations

import json

import pytest

from redrive.models import DeadLetter
from tests.cli.cli_support import Cli
from tests.factories import make_record

RAW = ("\x1b", "\x07", "\x9b", "\r")


def hostile(cli: Cli) -> DeadLetter:
    """A record whose texts carry an OSC title change, a bell, a C1 CSI and a CR."""
    record = make_record(
        topic="t\x1b[31mred",
        error_message="boom \x1b]0;PWNED\x07 ok \x9b2J",
        payload={"a": "x\x1b[2Jy\x9bz"},
    ).replace(traceback="Traceback (most recent call last):\n\tboom \x1b[1m\rX")
    [added] = cli.add(record)
    return added


def test_show_escapes_control_characters_but_keeps_lines(cli: Cli) -> None:
    """``show`` prints \\xNN for every control character, and the traceback keeps its lines."""
    record = hostile(cli)
    result = cli("show", record.id)
    assert result.exit_code == 0, result.output
    assert not any(char in result.stdout for char in RAW)
    assert "boom \\x1b]0;PWNED\\x07 ok \\x9b2J" in result.stdout
    assert "t\\x1b[31mred" in result.stdout
    assert "\n\tboom \\x1b[1m\\x0dX" in result.stdout


@pytest.mark.parametrize("command", [["list"], ["groups"], ["retry", "--all", "--dry-run"]])
def test_tables_escape_control_characters(cli: Cli, command: list[str]) -> None:
    """Listings, groups and replay plans show the escaped text, never the raw characters."""
    hostile(cli)
    result = cli(*command)
    assert result.exit_code == 0, result.output
    assert not any(char in result.stdout for char in RAW)
    assert "\\x1b" in result.stdout


def test_audit_actors_are_escaped(cli: Cli) -> None:
    """An actor name with control characters shows escaped in the audit table."""
    record = hostile(cli)
    assert cli("--actor", "a\x07\x9bb", "resolve", record.id).exit_code == 0
    result = cli("audit")
    assert not any(char in result.stdout for char in RAW)
    assert "a\\x07\\x9bb" in result.stdout


@pytest.mark.parametrize("command", [["show"], ["list", "--json"]])
def test_json_output_escapes_every_control_character(cli: Cli, command: list[str]) -> None:
    """--json output has no raw control character, C1 included, and parses to the same text."""
    record = hostile(cli)
    args = [*command, record.id, "--json"] if command == ["show"] else command
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert not any(char in result.stdout for char in RAW)
    data = json.loads(result.stdout)
    shown = data if command == ["show"] else data["items"][0]
    assert (shown["error_message"], shown["payload"]) == (record.error_message, record.payload)
