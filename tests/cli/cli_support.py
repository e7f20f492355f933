"""Helpers for the CLI tests: run ``redrive`` (Typer's runner or a real subprocess) on a
real SQLite file, and put records in that file."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from redrive.bootstrap import open_store
from redrive.models import DeadLetter
from redrive.ops.cli.app import app
from redrive.stores.base import Store
from tests.factories import make_record

ROOT = Path(__file__).resolve().parents[2]
REDRIVE = str(Path(sys.executable).with_name("redrive"))


@dataclasses.dataclass
class Cli:
    """Runs commands against one store (a SQLite file unless ``store_url`` is given) and
    seeds it."""

    db: Path
    workdir: Path
    store_url: str | None = None

    @property
    def url(self) -> str:
        return self.store_url or f"sqlite:///{self.db}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REDRIVE_")}
        return {**env, "REDRIVE_STORE_URL": self.url, "PYTHONPATH": str(ROOT), **extra}

    def __call__(self, *args: str, input: str | None = None, **env: str) -> Any:
        """Run ``redrive ARGS`` in-process through Typer's runner."""
        runner = CliRunner()
        cwd = os.getcwd()
        os.chdir(self.workdir)
        try:
            return runner.invoke(app, list(args), input=input, env=self.env(**env))
        finally:
            os.chdir(cwd)

    def run(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        """Run the real ``redrive`` script in a subprocess."""
        return subprocess.run(
            [REDRIVE, *args],
            cwd=self.workdir,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def store(self) -> Store:
        return open_store(self.url)

    def add(self, *records: DeadLetter) -> list[DeadLetter]:
        store = self.store()
        try:
            store.add(records)
        finally:
            store.close()
        return list(records)

    def seed(self, count: int, **fields: Any) -> list[DeadLetter]:
        """Add ``count`` records made by ``make_record(**fields)``."""
        return self.add(*(make_record(**fields) for _ in range(count)))

    def get(self, record_id: str) -> DeadLetter | None:
        store = self.store()
        try:
            return store.get(record_id)
        finally:
            store.close()

    def statuses(self, records: Sequence[DeadLetter]) -> list[str]:
        found = [self.get(record.id) for record in records]
        return [record.status.value if record else "missing" for record in found]
