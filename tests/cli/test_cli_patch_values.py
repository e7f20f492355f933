"""``redrive retry --patch`` reads operator JSON strictly: fractions are numbers, keys the
store cannot keep and nesting past any limit are refused with exit 2 and nothing changed."""

from __future__ import annotations

import json

from redrive.models import Status
from tests.cli.cli_support import Cli


def test_a_fraction_in_the_patch_is_a_number(cli: Cli) -> None:
    """``{"amount": 12.5}`` patches the payload with the float 12.5."""
    [record] = cli.seed(1, payload={"amount": 1})
    result = cli("retry", record.id, "--patch", '{"amount": 12.5}')
    assert result.exit_code == 0, result.output
    stored = cli.get(record.id)
    assert stored is not None and stored.payload == {"amount": 12.5}


def test_a_key_with_a_nul_is_refused(cli: Cli) -> None:
    """A patch key holding U+0000 cannot be stored: exit 2 naming the problem."""
    [record] = cli.seed(1)
    result = cli("retry", record.id, "--patch", json.dumps({"a\x00b": 1}))
    assert result.exit_code == 2
    assert "a key contains a NUL character" in result.stderr
    stored = cli.get(record.id)
    assert stored is not None and stored.status is Status.DEAD


def test_a_patch_nested_past_the_stack_is_refused(cli: Cli) -> None:
    """JSON nested deeper than Python can parse is one line, exit 2, not a RecursionError."""
    [record] = cli.seed(1)
    deep = '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"
    result = cli("retry", record.id, "--patch", deep)
    assert result.exit_code == 2
    assert "is nested more than 100 levels deep" in result.stderr
    assert "Traceback" not in result.output
    stored = cli.get(record.id)
    assert stored is not None and stored.status is Status.DEAD
