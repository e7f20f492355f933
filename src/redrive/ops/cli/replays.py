"""``redrive replays list|show|stop``: the replay runs the console and the API started.

The runs are kept in the store, so these commands see and stop the same runs as
``/api/v1/replays`` and the console's progress page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from redrive.ops.cli._common import (
    ActorOpt,
    JsonOpt,
    echo_json,
    handle_errors,
    reader,
    service,
    wants_json,
)

if TYPE_CHECKING:
    from redrive.service.runs import ReplayRuns

RunArg = Annotated[str, typer.Argument(metavar="ID", help="The replay run's id.")]


def register(app: typer.Typer) -> None:
    """Add the ``replays`` command group to ``app``."""
    group = typer.Typer(
        name="replays",
        help="Replay runs started from the console or the API.",
        no_args_is_help=True,
    )
    group.command("list")(list_runs)
    group.command("show")(show)
    group.command("stop")(stop)
    app.add_typer(group, name="replays")


def _runs(ctx: typer.Context, actor: str | None = None) -> ReplayRuns:
    from redrive.service.runs import ReplayRuns

    reader(ctx)  # refuses a SQLite store that does not exist
    return ReplayRuns(service(ctx, actor))


@handle_errors
def list_runs(ctx: typer.Context, json_output: JsonOpt = False) -> None:
    """Every kept replay run, newest first: state, progress, who started it.

    Example: redrive replays list
    """
    runs = _runs(ctx).list()
    if wants_json(ctx, json_output):
        echo_json({"items": runs, "next_cursor": None})
        return
    from redrive.ops.cli._render import console, table

    out = console()
    if not runs:
        out.print("no replay runs yet (start one from the console or POST /api/v1/replays)")
        return
    grid = table("ID!", "STATE", "STARTED!", "BY", "COUNT>", "DONE>", "FAILED>", "LEFT>")
    for run in runs:
        grid.add_row(
            str(run["id"]),
            str(run["state"]),
            str(run.get("created_at") or "-")[:19].replace("T", " "),
            str(run.get("actor") or "-"),
            f"{run.get('count', 0):,}",
            f"{run.get('scheduled', 0):,}",
            f"{run.get('failed', 0):,}",
            f"{run.get('left', 0):,}",
        )
    out.print(grid)


@handle_errors
def show(ctx: typer.Context, run_id: RunArg, json_output: JsonOpt = False) -> None:
    """One replay run: its selection, options, state and progress.

    Example: redrive replays show 0193a0c4-7f1e-7c3a-9d52-5b1e2f3a4b5c
    """
    run = _runs(ctx).get(run_id)
    if wants_json(ctx, json_output):
        echo_json(run)
        return
    for line in describe(run):
        typer.echo(line)


@handle_errors
def stop(
    ctx: typer.Context, run_id: RunArg, actor: ActorOpt = None, json_output: JsonOpt = False
) -> None:
    """Stop a running replay after the wave in progress; the records it has not reached
    stay dead (exit 1 if the run is not running).

    Example: redrive replays stop 0193a0c4-7f1e-7c3a-9d52-5b1e2f3a4b5c
    """
    runs = _runs(ctx, actor)
    run = runs.stop(run_id, actor=runs.dlq.actor)
    if wants_json(ctx, json_output):
        echo_json(run)
        return
    typer.echo(f"asked replay run {run_id} to stop; it stops after the wave in progress")


def describe(run: dict[str, Any]) -> list[str]:
    """The run as lines of text."""
    options = run.get("options") or {}
    chosen = [f"{k}={v}" for k, v in options.items() if v not in (None, 0, False)]
    lines = [
        f"replay run {run['id']}: {run['state']}",
        f"  started {str(run.get('created_at'))[:19].replace('T', ' ')} UTC by {run.get('actor')}",
        f"  selection: {run.get('filter')}",
        f"  options: {', '.join(chosen) or 'none'}",
        f"  planned {run.get('count', 0):,}; replayed {run.get('scheduled', 0):,}; "
        f"succeeded {run.get('succeeded', 0):,}; failed again {run.get('failed', 0):,}; "
        f"still running {run.get('pending', 0):,}; left {run.get('left', 0):,}",
    ]
    if run.get("aborted"):
        lines.append(f"  stopped: {run['aborted']}")
    if run.get("stop_requested_by") and run["state"] == "running":
        lines.append(f"  stop asked by {run['stop_requested_by']}")
    return lines
