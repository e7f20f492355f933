"""Options the CLI refuses before it touches anything: one line, exit 2, nothing changed."""

from __future__ import annotations

import pytest

from redrive.models import Status
from tests.cli.cli_support import Cli


def test_unknown_status_names_the_choices(cli: Cli) -> None:
    """``--status`` with a name that is no status lists the ones there are."""
    result = cli("list", "--status", "dead,zombie")
    assert result.exit_code == 2
    assert (
        "--status: expected scheduled, retrying, dead, resolved, discarded or all, "
        "got 'dead,zombie'" in result.stderr
    )


def test_empty_status_is_refused_too(cli: Cli) -> None:
    """``--status ,`` names no status at all: refused rather than matching nothing."""
    result = cli("list", "--status", ",")
    assert result.exit_code == 2
    assert "--status: expected" in result.stderr


@pytest.mark.parametrize("verb", ["resolve", "discard", "retry"])
def test_ids_with_all_is_refused_and_changes_nothing(cli: Cli, verb: str) -> None:
    """Ids and ``--all`` together are ambiguous: exit 2, and the record stays dead."""
    [record] = cli.seed(1)
    result = cli(verb, record.id, "--all", "--yes")
    assert result.exit_code == 2
    assert f"{verb}: give ids, or --all/--group with filters, not both" in result.stderr
    stored = cli.get(record.id)
    assert stored is not None and stored.status is Status.DEAD


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nocolon", "--app: expected module:attr, such as myshop.events:bus, got 'nocolon'"),
        (":bus", "--app: expected module:attr"),
        ("json:no_such_bus", "--app: 'json' has no attribute 'no_such_bus'"),
        ("no_such_module_x:bus", "--app: cannot import 'no_such_module_x'"),
    ],
)
def test_worker_app_that_cannot_be_imported_is_one_line(
    cli: Cli, target: str, message: str
) -> None:
    """A bad ``--app`` is a usage error that names the option, not an import traceback."""
    result = cli("worker", "--app", target)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_worker_app_that_is_no_bus_is_refused(cli: Cli) -> None:
    """``--app`` naming something that is not an EventBus (nor a factory of one) exits 2."""
    (cli.workdir / "refusals_notabus.py").write_text("bus = {'handlers': []}\n")
    result = cli("worker", "--app", "refusals_notabus:bus")
    assert result.exit_code == 2
    expected = "--app: refusals_notabus:bus is not an EventBus (or a function returning one)"
    assert expected in result.stderr
