"""``redrive outbox`` options beyond the basics: a bus as the target, the dispatcher until
SIGTERM, the human listing of dead events with paging, batch retry, cleanup, and the
refusals of bad options."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from redrive.models import format_time, utcnow
from tests.cli.cli_support import REDRIVE, ROOT
from tests.helpers import wait_for
from tests.integration.test_outbox_cli import Env


@pytest.fixture
def env(tmp_path: Path) -> Env:
    """A fresh CLI environment (a store file and a publisher module)."""
    return Env(tmp_path)


def _dead(env: Env, count: int) -> None:
    env.add(*({"n": n} for n in range(count)))
    env.kill_all()


def test_run_with_a_bus_hands_events_to_its_handlers(env: Env) -> None:
    """--bus module:attr publishes pending events on that bus: its handler runs them."""
    module = env.dir / "outbox_cli_bus.py"
    module.write_text(
        "import os\n"
        "from redrive import EventBus, open_store\n"
        "bus = EventBus(open_store(os.environ['REDRIVE_STORE_URL']))\n"
        "@bus.handler('orders.created', name='app.note')\n"
        "def note(event):\n"
        f"    with open({str(env.dir / 'handled.txt')!r}, 'a') as f:\n"
        "        f.write(str(event.payload['n']) + '\\n')\n"
    )
    env.add({"n": 7}, {"n": 8})
    result = env("outbox", "run", "--bus", "outbox_cli_bus:bus", "--once")
    assert result.exit_code == 0, result.output
    assert "dispatched 2 events" in result.output
    assert sorted((env.dir / "handled.txt").read_text().split()) == ["7", "8"]


def test_run_refuses_an_unknown_ordering_and_a_target_that_is_not_callable(env: Env) -> None:
    """--ordering other than none/key, or a --publisher that names a value, exit 2."""
    ordering = env("outbox", "run", "--publisher", f"{env.module}:publish", "--ordering", "fifo")
    assert ordering.exit_code == 2
    assert "--ordering: expected none or key, got 'fifo'" in ordering.output
    (env.dir / "outbox_cli_notcallable.py").write_text("publish = 42\n")
    value = env("outbox", "run", "--publisher", "outbox_cli_notcallable:publish", "--once")
    assert value.exit_code == 2
    assert "--publisher: outbox_cli_notcallable:publish is not callable" in value.output
    assert "Traceback" not in ordering.output + value.output


def test_run_serves_until_sigterm_and_delivers_meanwhile(env: Env) -> None:
    """Without --once the dispatcher says it is ready, delivers what is pending, and stops
    cleanly (exit 0) on SIGTERM."""
    env.add({"n": 1})
    proc = subprocess.Popen(
        [REDRIVE, "outbox", "run", "--publisher", f"{env.module}:publish"],
        cwd=env.dir,
        env={
            **os.environ,
            "REDRIVE_STORE_URL": f"sqlite:///{env.db}",
            "PYTHONPATH": f"{env.dir}{os.pathsep}{ROOT}",
        },
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: env.sent() == ["orders.created"], timeout=30, what="event delivered")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "outbox dispatcher ready on" in err
    assert "outbox dispatcher stopped" in err


def test_dead_lists_one_line_per_event_and_pages_with_a_cursor(env: Env) -> None:
    """The human listing prints id, topic, aggregate, attempts and error per line; with
    --limit it names the cursor of the next page, which lists the rest."""
    _dead(env, 3)
    first = env("outbox", "dead", "--limit", "2")
    assert first.exit_code == 0, first.output
    lines = [line for line in first.stdout.splitlines() if line]
    assert len(lines) == 2
    fields = lines[0].split("\t")
    assert fields[1:] == ["orders.created", "order:-", "1", "ConnectionError: broker down"]
    assert "more: --cursor" in first.stderr
    cursor = first.stderr.split("--cursor", 1)[1].split()[0]
    rest = env("outbox", "dead", "--limit", "2", "--cursor", cursor)
    [last] = [line for line in rest.stdout.splitlines() if line]
    assert {line.split("\t")[0] for line in [*lines, last]} == {"1", "2", "3"}
    assert "more:" not in rest.stderr


def test_dead_with_a_filter_that_matches_nothing_says_match(env: Env) -> None:
    """With a filter, the empty answer says nothing matched (not that nothing is dead)."""
    _dead(env, 1)
    result = env("outbox", "dead", "--event-type", "orders.cancelled")
    assert result.stdout.strip() == "no dead outbox events match"


def test_retry_of_several_ids_requeues_the_dead_ones(env: Env) -> None:
    """Several ids re-queue in one batch; the message counts those that were dead."""
    _dead(env, 2)
    result = env("outbox", "retry", "1", "2", "99")
    assert result.exit_code == 0, result.output
    assert "re-queued 2 events of 3" in result.output
    assert env("outbox", "count").output.strip() == "0"


def test_cleanup_deletes_dead_events_older_than_the_age(env: Env) -> None:
    """cleanup keeps dead events younger than --older-than and deletes the older ones."""
    _dead(env, 2)
    kept = env("outbox", "cleanup", "--older-than", "30d")
    assert kept.exit_code == 0, kept.output
    assert "deleted 0 dead events" in kept.output
    with sqlite3.connect(env.db) as conn:
        long_ago = format_time(utcnow() - timedelta(days=40))
        conn.execute("UPDATE redrive_outbox SET dead_at = ?", (long_ago,))
    gone = env("outbox", "cleanup", "--older-than", "30d")
    assert "deleted 2 dead events" in gone.output
    assert env("outbox", "count").output.strip() == "0"
