"""``redrive replays list|show`` over a run kept in the store (the API's tests stop one):
the table and the JSON name its progress; an unknown run exits 3."""

from __future__ import annotations

import json
from datetime import timedelta

from redrive.bootstrap import open_store
from redrive.service import DeadLetterQueue, ReplayOptions, make_filter
from redrive.service.runs import ReplayRuns
from tests.cli.cli_support import Cli


def finished_run(cli: Cli) -> str:
    """A replay run of 3 dead letters, run to the end in this process."""
    cli.seed(3, topic="a")
    store = open_store(cli.url)
    try:
        dlq = DeadLetterQueue(store)
        plan = dlq.plan(make_filter(topic="a", status="dead"))
        run = ReplayRuns(dlq).start(
            plan, ReplayOptions(wait=timedelta(0)), actor="alice", background=False
        )
    finally:
        store.close()
    return str(run["id"])


def test_show_and_list_a_kept_run(cli: Cli) -> None:
    """show prints the run's state and tally; list has it with its actor; --json agrees."""
    run_id = finished_run(cli)
    shown = cli("replays", "show", run_id)
    assert shown.exit_code == 0, shown.output
    assert run_id in shown.stdout and "done" in shown.stdout
    data = json.loads(cli("replays", "show", run_id, "--json").stdout)
    assert (data["state"], data["count"], data["scheduled"], data["left"]) == ("done", 3, 3, 0)
    listed = cli("replays", "list", COLUMNS="")
    [row] = [line for line in listed.stdout.splitlines() if line.startswith(run_id)]
    assert "alice" in row and "done" in row


def test_show_of_an_unknown_run_exits_3(cli: Cli) -> None:
    """An id no run has: a one-line error, exit 3 (not found)."""
    cli.seed(1)
    result = cli("replays", "show", "nope")
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("error:") and "Traceback" not in result.output
