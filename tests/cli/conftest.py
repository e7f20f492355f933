"""Fixtures of the CLI tests (the `redrive` command end to end)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.cli_support import Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """``redrive`` on a fresh SQLite file, run from an empty working directory."""
    work = tmp_path / "work"
    work.mkdir()
    cli = Cli(db=tmp_path / "redrive.db", workdir=work)
    cli.store().close()  # the store exists, as an app's would: read commands refuse a typo
    return cli
