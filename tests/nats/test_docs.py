"""docs/nats.md runs as written: its files are written, its Python run, its commands too.

Blocks run in order in one empty directory, against the test server (its URL replaces
``nats://127.0.0.1:4222``): ``toml`` and ``python`` blocks whose first line is ``# NAME`` are
saved as NAME; every ``python`` block runs; every ``$`` line of a ``console`` block runs and
must succeed. ``redrive nats run`` runs until the example's dead letter is in the store,
then gets SIGTERM.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from redrive.stores.base import Filter
from redrive.stores.sqlite import SQLiteStore
from tests.helpers import wait_for

pytestmark = pytest.mark.nats

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "nats.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)
BIN = Path(sys.executable).parent


def blocks(url: str) -> list[tuple[str, str]]:
    text = DOC.read_text().replace("nats://127.0.0.1:4222", url)
    return [(kind, body) for kind, body in BLOCK.findall(text)]


def dead_letters(db: Path) -> int:
    if not db.exists():
        return 0
    store = SQLiteStore(db)
    try:
        return store.count(Filter())
    finally:
        store.close()


def test_every_block_of_the_nats_guide_runs(nats_url: str, tmp_path: Path) -> None:
    """Config, app, publisher, commands and replay examples of docs/nats.md all work."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDRIVE_")}
    env |= {"PATH": f"{BIN}:{env.get('PATH', '')}", "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    ran = []
    for kind, body in blocks(nats_url):
        first = body.splitlines()[0] if body.strip() else ""
        if kind in ("toml", "python") and re.fullmatch(r"# [\w.]+", first):
            (tmp_path / first[2:]).write_text(body)
        if kind == "python":
            result = subprocess.run(
                [sys.executable, "-c", body],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 0, f"{body}\n{result.stderr}"
            ran.append(first or "python")
        if kind == "console":
            for line in body.splitlines():
                if line.startswith("$ "):
                    ran.append(run_command(line[2:], tmp_path, env))
    assert "redrive nats run --app billing:consumer" in ran
    assert "redrive nats import ORDERS_DLQ" in ran


def run_command(command: str, cwd: Path, env: dict[str, str]) -> str:
    args = shlex.split(command)
    if args[:3] == ["redrive", "nats", "run"]:
        proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            wait_for(
                lambda: dead_letters(cwd / "redrive.db") == 1,
                timeout=30,
                what="the guide's dead letter",
            )
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "billed order 42" in out
        return command
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return command
