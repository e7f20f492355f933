"""``redrive replays``: the replay runs started from the console or the API, listed, shown
and stopped from the command line."""

from __future__ import annotations

import json
from datetime import timedelta

from redrive import DeadLetterQueue
from redrive.service import ReplayOptions, make_filter
from redrive.service.runs import ReplayRuns
from tests.cli.cli_support import Cli


def _finished_run(cli: Cli, count: int = 2) -> str:
    """Seed ``count`` dead letters and replay them in a run that ends before it returns."""
    cli.seed(count, topic="orders.created")
    store = cli.store()
    try:
        dlq = DeadLetterQueue(store)
        plan = dlq.plan(make_filter(topic="orders.created", status="dead"))
        options = ReplayOptions(wait=timedelta(0), rate=1000.0)
        run = ReplayRuns(dlq).start(plan, options, actor="ana", background=False)
    finally:
        store.close()
    return str(run["id"])


def test_list_without_runs_says_where_they_come_from(cli: Cli) -> None:
    """No run yet: one line naming the console and the API, not an empty table."""
    result = cli("replays", "list")
    assert result.exit_code == 0, result.output
    assert "no replay runs yet (start one from the console or POST /api/v1/replays)" in (
        result.stdout
    )


def test_list_shows_a_row_per_run_with_its_progress(cli: Cli) -> None:
    """A finished run is listed with its state, who started it and its counts."""
    run_id = _finished_run(cli)
    result = cli("replays", "list", COLUMNS="200")
    assert result.exit_code == 0, result.output
    [row] = [line for line in result.stdout.splitlines() if run_id in line]
    assert "done" in row.split() and "ana" in row.split()
    [item] = json.loads(cli("replays", "list", "--json").stdout)["items"]
    assert item["id"] == run_id and item["count"] == 2


def test_show_describes_the_selection_options_and_tally(cli: Cli) -> None:
    """show prints the run's state, actor, selection, the options set and the counts."""
    run_id = _finished_run(cli)
    result = cli("replays", "show", run_id)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"replay run {run_id}: done"
    assert "by ana" in lines[1]
    assert "orders.created" in lines[2]
    assert "rate=1000.0" in lines[3]
    assert "planned 2; replayed 2" in lines[4]
    assert json.loads(cli("replays", "show", run_id, "--json").stdout)["id"] == run_id


def test_show_and_stop_of_an_unknown_run_are_not_found(cli: Cli) -> None:
    """An id that names no run is exit 3 for show and for stop."""
    assert cli("replays", "show", "no-such-run").exit_code == 3
    assert cli("replays", "stop", "no-such-run").exit_code == 3


def test_stop_of_a_finished_run_is_refused(cli: Cli) -> None:
    """A run that is done cannot be stopped: exit 1 and the reason, the run unchanged."""
    run_id = _finished_run(cli)
    result = cli("replays", "stop", run_id)
    assert result.exit_code == 1
    assert "Traceback" not in result.output and result.stderr.strip()
    shown = json.loads(cli("replays", "show", run_id, "--json").stdout)
    assert shown["state"] == "done"
