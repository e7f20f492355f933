"""``redrive monitor`` and ``redrive alerts``, run as real processes on a SQLite file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from redrive.stores.sqlite import SQLiteStore
from tests.helpers import wait_for
from tests.ops.conftest import Receiver, Workload

SECRET_URL_PATH = "/hook/T0000/SECRETTOKEN"


def redrive(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REDRIVE_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", "from redrive.ops.cli import main; main()", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def config(tmp_path: Path, db_path: Path) -> Path:
    """A redrive.toml with seed 002's rfq thresholds and a signed webhook sink."""
    path = tmp_path / "redrive.toml"
    path.write_text(
        f'store_url = "sqlite:///{db_path}"\n'
        "[topics.rfq.alerts]\nwarn_count = 10\ncritical_count = 50\n"
        "[alerts.defaults]\nmax_age = false\n"
        '[alerts.sinks.hook]\ntype = "webhook"\nurl_env = "HOOK_URL"\nsecret_env = "HOOK_KEY"\n'
        "retries = 0\n"
    )
    return path


def env(receiver: Receiver) -> dict[str, str]:
    return {"HOOK_URL": receiver.url(SECRET_URL_PATH), "HOOK_KEY": "k"}


async def test_monitor_once_sends_then_stays_quiet(
    workload: Workload, config: Path, receiver: Receiver, tmp_path: Path
) -> None:
    """``monitor --once`` sends what is due; a second run within the cooldown sends nothing."""
    await workload.dead("rfq", 12)
    first = redrive("--config", str(config), "monitor", "--once", cwd=tmp_path, env=env(receiver))
    second = redrive("--config", str(config), "monitor", "--once", cwd=tmp_path, env=env(receiver))
    assert first.returncode == 0, first.stderr
    assert "[WARNING] rfq: 12 dead letters" in first.stdout
    assert "no notifications due" in second.stdout
    assert [body["topic"] for body in receiver.bodies()] == ["rfq"]


async def test_status_shows_each_rule(
    workload: Workload, config: Path, receiver: Receiver, tmp_path: Path
) -> None:
    """``alerts status --json`` lists the rfq count rule as a warning at 12 of 10."""
    await workload.dead("rfq", 12)
    result = redrive(
        "--json", "--config", str(config), "alerts", "status", cwd=tmp_path, env=env(receiver)
    )
    assert result.returncode == 0, result.stderr
    rows = {(row["topic"], row["rule"]): row for row in json.loads(result.stdout)}
    count = rows[("rfq", "count")]
    assert (count["severity"], count["value"], count["threshold"]) == ("warning", 12, 10)


def test_test_alert_reaches_the_sink(config: Path, receiver: Receiver, tmp_path: Path) -> None:
    """``alerts test --sink hook`` posts a signed test alert."""
    result = redrive(
        "--config", str(config), "alerts", "test", "--sink", "hook", cwd=tmp_path, env=env(receiver)
    )
    assert result.returncode == 0, result.stderr
    [request] = receiver.requests
    assert request.json()["test"] is True
    assert request.headers["X-Redrive-Signature"].startswith("sha256=")


def test_failed_test_alert_hides_the_url(config: Path, receiver: Receiver, tmp_path: Path) -> None:
    """A sink that fails exits 1 with a one-line reason that does not show its URL."""
    receiver.statuses = [403]
    result = redrive(
        "--config", str(config), "alerts", "test", "--sink", "hook", cwd=tmp_path, env=env(receiver)
    )
    assert result.returncode == 1
    assert result.stderr == "error: hook: HTTP 403 after 1 tries\n"
    assert "SECRETTOKEN" not in result.stderr + result.stdout


def test_unknown_sink(config: Path, receiver: Receiver, tmp_path: Path) -> None:
    """An unknown sink name exits 3 and lists the configured sinks."""
    result = redrive(
        "--config",
        str(config),
        "alerts",
        "test",
        "--sink",
        "pager",
        cwd=tmp_path,
        env=env(receiver),
    )
    assert result.returncode == 3
    assert result.stderr.strip() == "error: no sink named 'pager'; configured: hook"


def test_missing_secret_is_one_line(config: Path, tmp_path: Path) -> None:
    """A sink whose variable is not set is a one-line config error, exit 2, no traceback."""
    result = redrive("--config", str(config), "alerts", "status", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "alerts.sinks.hook.url_env: environment variable HOOK_URL is not set"
    )
    assert len(result.stderr.strip().splitlines()) == 1


async def test_monitor_runs_until_sigterm(
    workload: Workload, config: Path, receiver: Receiver, tmp_path: Path
) -> None:
    """``redrive monitor`` notifies at its first evaluation and exits 0 on SIGTERM."""
    await workload.dead("rfq", 10)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REDRIVE_")}
    environ.update(env(receiver))
    command = [sys.executable, "-c", "from redrive.ops.cli import main; main()"]
    process = subprocess.Popen(  # noqa: ASYNC220 - the loop has nothing to do meanwhile
        [*command, "--config", str(config), "monitor"],
        cwd=tmp_path,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: len(receiver.requests) == 1, timeout=30)
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "monitoring every 60s; sinks: hook" in out


async def test_two_monitor_once_runs_fire_then_resolve(
    workload: Workload,
    config: Path,
    receiver: Receiver,
    tmp_path: Path,
    sqlite_store: SQLiteStore,
) -> None:
    """A ``monitor --once`` gives the replica lock up on exit, so the next run (a cron job's
    next tick) evaluates at once and sends the ``resolved`` notification."""
    from redrive.service import DeadLetterQueue, make_filter

    await workload.dead("rfq", 12)
    first = redrive("--config", str(config), "monitor", "--once", cwd=tmp_path, env=env(receiver))
    assert "[WARNING] rfq: 12 dead letters" in first.stdout, first.stderr
    DeadLetterQueue(sqlite_store).resolve(where=make_filter(topic="rfq"))
    second = redrive("--config", str(config), "monitor", "--once", cwd=tmp_path, env=env(receiver))
    assert second.returncode == 0, second.stderr
    assert "RESOLVED" in second.stdout.upper(), second.stdout
    assert len(receiver.bodies()) == 2
