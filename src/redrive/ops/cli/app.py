"""The Typer application: global options, and the command modules it is assembled from.

Each module in ``COMMAND_MODULES`` defines ``register(app)``; a feature adds its commands
by adding its module here. Commands get settings, store and service from ``CliState``.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from redrive.config import Settings
    from redrive.service import DeadLetterQueue
    from redrive.stores.base import Store

COMMAND_MODULES: tuple[str, ...] = (
    "redrive.ops.cli.reads",
    "redrive.ops.cli.replay",
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
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3

app = typer.Typer(
    name="redrive",
    help="Inspect, replay and clean up failed events.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclasses.dataclass
class CliState:
    """What the global options chose; the store and service open on first use."""

    store_url: str | None
    config: Path | None
    json: bool
    actor: str | None
    _settings: Settings | None = None
    _store: Store | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from redrive.config import Settings

            environ = dict(os.environ)
            if self.store_url:
                environ["REDRIVE_STORE_URL"] = self.store_url
            self._settings = Settings.load(self.config, environ=environ)
        return self._settings

    @property
    def store(self) -> Store:
        if self._store is None:
            from redrive.bootstrap import open_store

            self._store = open_store(self.settings.store_url)
        return self._store

    def service(self) -> DeadLetterQueue:
        from redrive.service import DeadLetterQueue

        return DeadLetterQueue(self.store, actor=self.actor, max_replays=self.settings.max_replays)


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


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print a one-line reason to stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def run() -> None:
    """Run the CLI, turning redrive's errors into one-line messages and exit codes."""
    from redrive.exceptions import ConfigError, NotFound, RedriveError

    try:
        app()
    except NotFound as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_NOT_FOUND)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except RedriveError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
