"""What every command shares with the application: the global options' state, the exit
codes and the one map from redrive's errors to them."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from redrive.config import Settings
    from redrive.service import DeadLetterQueue
    from redrive.stores.base import Store

EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND = 1, 2, 3
"""Exit codes: 0 done, 1 failed (or nothing to do), 2 bad usage or input, 3 not found."""


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

        settings = self.settings
        return DeadLetterQueue(
            self.store,
            actor=self.actor,
            max_replays=settings.max_replays,
            redactor=settings.redactor(),
        )


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print a one-line reason to stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def exit_code(error: BaseException) -> int:
    """The exit code for one of redrive's errors."""
    from redrive.exceptions import ConfigError, FormatError, InvalidInput, NotFound

    if isinstance(error, NotFound):
        return EXIT_NOT_FOUND
    if isinstance(error, ConfigError | FormatError | InvalidInput):
        return EXIT_USAGE
    return EXIT_FAILED
