"""``redrive demo`` and ``redrive worker``: the real script in subprocesses."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Iterator

import pytest

from tests.cli.cli_support import REDRIVE, Cli
from tests.helpers import wait_for

FIXED_APP = "redrive.ops.cli.demo_app:fixed_bus"


@pytest.fixture
def worker(cli: Cli) -> Iterator[subprocess.Popen[str]]:
    """``redrive worker`` running the demo app with its bug fixed; stopped by SIGTERM."""
    yield from _worker(cli)


@pytest.fixture
def demo_then_worker(cli: Cli) -> Iterator[subprocess.Popen[str]]:
    """The demo's dead letters, then the worker: started during the demo, the fixed worker
    could run the demo's scheduled retries before they die (a slow machine does)."""
    assert cli.run("demo").returncode == 0
    yield from _worker(cli)


def _worker(cli: Cli) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [REDRIVE, "worker", "--app", FIXED_APP],
        cwd=cli.workdir,
        env=cli.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    ready = process.stderr.readline()
    assert ready.startswith("worker ready"), ready
    yield process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)


def test_demo_fills_the_store_and_suggests_next_steps(cli: Cli) -> None:
    """The demo leaves resolved retries and two error groups, and prints what to try."""
    result = cli.run("demo")
    assert result.returncode == 0, result.stderr
    assert "try next:" in result.stdout
    groups = json.loads(cli.run("groups", "--json").stdout)
    assert sorted(g["error_type"] for g in groups) == ["AttributeError", "ValueError"]
    stats = json.loads(cli.run("stats", "--json").stdout)
    assert stats["counts"]["orders.created"] == {"resolved": 15}


def test_worker_runs_replays_without_the_app(
    cli: Cli, demo_then_worker: subprocess.Popen[str]
) -> None:
    """After the fix, replaying the bug's group through the worker resolves every record."""
    groups = json.loads(cli.run("groups", "--json").stdout)
    bug = next(g for g in groups if g["error_type"] == "AttributeError")
    report = cli.run("retry", "--group", bug["fingerprint"], "--canary", "2", "--yes", "--json")
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert (data["scheduled"], data["succeeded"], data["aborted"]) == (bug["count"],) * 2 + (None,)


def test_patched_poison_payload_succeeds(cli: Cli, demo_then_worker: subprocess.Popen[str]) -> None:
    """The poison payload, patched, is replayed by the worker and resolved; the worker is
    listed by ``redrive workers`` while it runs and prints what it ran when it stops."""
    poison = json.loads(cli.run("list", "--topic", "payments.captured", "--json").stdout)
    record_id = poison["items"][0]["id"]
    assert cli.run("retry", record_id, "--patch", '{"amount": 12}').returncode == 0

    def is_resolved() -> bool:
        shown = json.loads(cli.run("show", record_id, "--json").stdout)
        return bool(shown["status"] == "resolved")

    wait_for(is_resolved, timeout=30, what="the patched record to be resolved")
    workers = json.loads(cli.run("workers", "--json").stdout)
    assert [w["kind"] for w in workers["items"]] == ["worker"] and workers["items"][0]["live"]
    demo_then_worker.send_signal(signal.SIGTERM)
    _, stderr = demo_then_worker.communicate(timeout=30)
    summary = re.search(
        r"worker stopped; ran (\d+): (\d+) resolved, (\d+) dead, (\d+) to retry", stderr
    )
    assert summary is not None, stderr
    ran, resolved, dead, again = (int(n) for n in summary.groups())
    assert ran == resolved + dead + again and resolved >= 1
    assert json.loads(cli.run("workers", "--json").stdout)["items"] == []


def test_worker_stops_cleanly_on_sigterm(cli: Cli, worker: subprocess.Popen[str]) -> None:
    """SIGTERM stops the worker with exit code 0."""
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0


def test_worker_with_a_bad_app_path_is_a_usage_error(cli: Cli) -> None:
    """--app that cannot be imported is one line and exit code 2."""
    result = cli.run("worker", "--app", "no_such_module:bus")
    assert result.returncode == 2
    assert result.stderr.startswith("error: --app: cannot import 'no_such_module'")


def test_worker_applies_retention(cli: Cli) -> None:
    """The worker purges records past their topic's retention when it starts."""
    from redrive.models import Status
    from tests.factories import ago, make_record

    (old,) = cli.add(
        make_record(status=Status.RESOLVED, topic="orders.created", created_at=ago(3 * 86400))
    )
    config = cli.workdir / "redrive.toml"
    config.write_text('[topics."orders.created"]\nretention = "1d"\n')
    process = subprocess.Popen(
        [REDRIVE, "worker", "--app", FIXED_APP],
        cwd=cli.workdir,
        env=cli.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: cli.statuses([old]) == ["missing"], timeout=30, what="retention to purge")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_demo_says_how_to_call_redrive_off_the_path(cli: Cli) -> None:
    """When the venv is not active, the demo's "try next" says how to run redrive."""
    result = cli.run("demo", PATH="/usr/bin:/bin")
    assert result.returncode == 0, result.stderr
    assert "`redrive` is not on your PATH" in result.stdout
    assert "bin/activate" in result.stdout
