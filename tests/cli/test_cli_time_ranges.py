"""Times and durations out of range on the command line: one line, exit code 2."""

from __future__ import annotations

import pytest

from redrive.models import Status
from tests.cli.cli_support import Cli
from tests.factories import ago, make_record


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["list", "--since", "99999999999d"], "--since"),
        (["list", "--since", "999999d"], "--since"),
        (["list", "--until", "0001-01-01T00:00:00+23:59"], "--until"),
        (["list", "--until", "9999-12-31T23:59:59-23:59"], "--until"),
        (["purge", "--older-than", "9999999d", "--yes"], "--older-than"),
        (["archive", "--to", "a.jsonl", "--older-than", "99999999999d", "--yes"], "--older-than"),
        (["retry", "--all", "--yes", "--wait", "99999999999d"], "--wait"),
    ],
)
def test_out_of_range_time_is_one_line_exit_2(cli: Cli, args: list[str], option: str) -> None:
    """Each command refuses the value on one line naming the option, and changes nothing."""
    records = cli.add(make_record(), make_record(status=Status.RESOLVED, created_at=ago(86400)))
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {option}: ")
    assert len(result.stderr.splitlines()) == 1
    assert cli.statuses(records) == ["dead", "resolved"]
    assert not (cli.workdir / "a.jsonl").exists()


def test_the_oldest_valid_times_still_work(cli: Cli) -> None:
    """A long but valid age and the first representable time are accepted."""
    cli.seed(1)
    assert cli("list", "--since", "0001-01-01T00:00:00Z").exit_code == 0
    assert cli("list", "--since", "36500d").exit_code == 0
    purge = cli("purge", "--older-than", "365000d", "--yes")
    assert (purge.exit_code, purge.stdout) == (0, "purged 0 records\n")
