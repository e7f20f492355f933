"""``redrive list --sort``: every sort walks to the end with the cursors it prints, the table
shows the sort key, and a bad sort or a cursor of another sort is a usage error."""

from __future__ import annotations

import json

import pytest

from redrive.models import Status
from redrive.stores.paging import SORTS
from tests.cli.cli_support import Cli
from tests.contract.test_sorting import expected, records_with_ties


@pytest.mark.parametrize("sort", SORTS)
def test_every_sort_pages_to_the_end(cli: Cli, sort: str) -> None:
    """--sort with the cursors it hands out visits every record once, in the sort's order."""
    records = cli.add(*records_with_ties())
    seen: list[str] = []
    more: list[str] = []
    while True:
        result = cli("list", "--status", "all", f"--sort={sort}", "-n", "4", "--json", *more)
        assert result.exit_code == 0, result.output
        page = json.loads(result.stdout)
        seen += [item["id"] for item in page["items"]]
        if not page["next_cursor"]:
            break
        more = ["--cursor", page["next_cursor"]]
    assert seen == expected(records, sort)


def test_the_table_says_how_to_go_on_and_shows_when_it_died(cli: Cli) -> None:
    """The "more:" line repeats the sort with the cursor; a dead sort shows a DIED column."""
    records = cli.add(*records_with_ties())
    result = cli("list", "--sort", "-dead", "-n", "2", COLUMNS="")
    assert result.exit_code == 0, result.output
    dead = expected([r for r in records if r.status == Status.DEAD], "-dead")
    lines = result.stdout.splitlines()
    assert "DIED" in lines[0]
    assert [line.split()[0] for line in lines[2:4]] == dead[:2]
    [more] = [line for line in lines if line.startswith("more:")]
    assert more.startswith("more: --sort=-dead --cursor ")
    go_on = cli("list", *more.removeprefix("more: ").split(), "-n", "2", "--json")
    assert [item["id"] for item in json.loads(go_on.stdout)["items"]] == dead[2:4]


def test_an_unknown_sort_is_a_usage_error(cli: Cli) -> None:
    """--sort size: exit 2, naming the choices, no traceback."""
    result = cli("list", "--sort", "size")
    assert result.exit_code == 2
    assert "-attempts" in result.stderr and "Traceback" not in result.output


def test_a_cursor_of_another_sort_is_refused(cli: Cli) -> None:
    """A newest-first cursor passed with --sort attempts says what is wrong."""
    cli.seed(3)
    page = json.loads(cli("list", "-n", "1", "--json").stdout)
    result = cli("list", "--sort", "attempts", "--cursor", page["next_cursor"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: cursor:")
