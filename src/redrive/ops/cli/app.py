"""The Typer application: global options, and the command modules it is assembled from.

Each module in ``COMMAND_MODULES`` defines ``register(app)``; a feature adds its commands
by adding its module here. Commands get settings, store and service from ``CliState``
(``_state``); no module imports this one, so loading the commands makes no import cycle.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from redrive.ops.cli._state import CliState, exit_code

COMMAND_MODULES: tuple[str, ...] = (
    "redrive.ops.cli.reads",
    "redrive.ops.cli.replay",
    "redrive.ops.cli.replays",
    "redrive.ops.cli.workers",
    "redrive.ops.cli.manage",
    "redrive.ops.cli.files",
    "redrive.ops.cli.policy",
    "redrive.ops.cli.demo",
    "redrive.ops.cli.worker",
    "redrive.ops.cli.alerts",
    "redrive.ops.cli.serve",
    "redrive.ops.cli.tokens",
    "redrive.ops.cli.migrate",
    "redrive.ops.cli.outbox",
    "redrive.ops.cli.kafka",
    "redrive.ops.cli.nats",
)

app = typer.Typer(
    name="redrive",
    help="Inspect, replay and clean up failed events.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _global(
    ctx: typer.Context,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            envvar="REDRIVE_STORE_URL",
            help="Store URL (default sqlite:///./redrive.db).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", envvar="REDRIVE_CONFIG", help="redrive.toml or .yaml file."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    actor: Annotated[
        str | None,
        typer.Option("--actor", help="Who is acting, for the audit trail (default: OS user)."),
    ] = None,
) -> None:
    ctx.obj = CliState(store_url=store, config=config, json=json_output, actor=actor)
    say_store_waits()


def say_store_waits() -> None:
    """Show the store's outage warnings on stderr, one line each ("store ... is
    unreachable (...); retrying for up to 30s"): a command started while the database is
    down waits for it, as a running process does, and says so."""
    import logging

    stores = logging.getLogger("redrive.stores")
    if logging.getLogger().handlers or any(h.get_name() == "redrive-cli" for h in stores.handlers):
        return  # the app (or a command) configured logging: its handlers show it
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name("redrive-cli")
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("redrive: %(message)s"))
    stores.addHandler(handler)


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def run() -> None:
    """Run the CLI, turning redrive's errors into one-line messages and exit codes (the
    same map as the commands' ``handle_errors``, for errors raised outside a command)."""
    from redrive.exceptions import RedriveError

    try:
        app()
    except RedriveError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exit_code(exc))
