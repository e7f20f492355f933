"""Every command's --help keeps its example lines apart (Click rewraps a paragraph into one
unless it follows a ``\\b`` line): each line of a ``\\b`` block appears as its own line."""

from __future__ import annotations

import inspect
from typing import Any

import typer.main
from typer.testing import CliRunner

from redrive.ops.cli.app import app


def commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(path, command) of every command and subcommand under ``group``."""
    found: list[tuple[tuple[str, ...], Any]] = []
    for name, command in sorted(getattr(group, "commands", {}).items()):
        found.append(((*path, name), command))
        found += commands(command, (*path, name))
    return found


def kept_blocks(doc: str) -> list[list[str]]:
    """The line blocks a docstring marks with ``\\b`` (up to the next blank line)."""
    blocks: list[list[str]] = []
    block: list[str] = []
    keeping = False
    for line in inspect.cleandoc(doc).splitlines():
        if line.strip() == "\b":
            keeping, block = True, []
        elif keeping and not line.strip():
            blocks.append(block)
            keeping = False
        elif keeping:
            block.append(line.strip())
    if keeping:
        blocks.append(block)
    return blocks


def test_example_blocks_keep_their_lines() -> None:
    """Each line of a kept block shows on a line of its own in the command's --help."""
    runner = CliRunner()
    checked = 0
    for path, command in commands(typer.main.get_command(app)):
        doc = command.help or ""
        if "\b" not in doc:
            continue
        output = runner.invoke(app, [*path, "--help"]).output
        shown = {line.strip() for line in output.splitlines()}
        for block in kept_blocks(doc):
            for line in block:
                assert line in shown, (path, line)
                checked += 1
    assert checked >= 2  # list and audit at least
