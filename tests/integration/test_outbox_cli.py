"""``redrive outbox ...`` end to end through the CLI on a real SQLite file."""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from redrive import RetryPolicy
from redrive.ops.cli.app import app
from redrive.outbox import Outbox
from redrive.stores.sqlite import SQLiteStore


class Env:
    """A store file, a working directory with a publisher module, and a CLI runner."""

    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "app.db"
        self.dir = tmp_path
        self.module = f"pub_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{self.module}.py").write_text(
            "from pathlib import Path\n"
            "def publish(event):\n"
            "    if event.payload.get('fail'):\n"
            "        raise ConnectionError('broker down')\n"
            f"    with open({str(tmp_path / 'sent.txt')!r}, 'a') as f:\n"
            "        f.write(event.topic + '\\n')\n"
        )

    def add(self, *payloads: dict[str, Any]) -> None:
        store = SQLiteStore(self.db)
        outbox = Outbox(store, publisher=print)
        conn = sqlite3.connect(self.db)
        for payload in payloads:
            outbox.add(conn, "orders.created", payload, aggregate_type="order")
        conn.commit()
        conn.close()
        outbox.close()
        store.close()

    def kill_all(self) -> None:
        """Make every pending event dead (one attempt allowed, the broker is down)."""
        import asyncio

        async def fail(event: Any) -> None:
            raise ConnectionError("broker down")

        store = SQLiteStore(self.db)
        outbox = Outbox(store, publisher=fail, policy=RetryPolicy(max_attempts=1))
        asyncio.run(outbox.dispatch())
        outbox.close()
        store.close()

    def __call__(self, *args: str) -> Any:
        cwd = os.getcwd()
        os.chdir(self.dir)
        try:
            env = {"REDRIVE_STORE_URL": f"sqlite:///{self.db}"}
            return CliRunner().invoke(app, list(args), env=env)
        finally:
            os.chdir(cwd)

    def sent(self) -> list[str]:
        path = self.dir / "sent.txt"
        return path.read_text().split() if path.exists() else []


@pytest.fixture
def env(tmp_path: Path) -> Env:
    """A fresh CLI environment."""
    return Env(tmp_path)


def test_run_once_delivers_pending_events(env: Env) -> None:
    """outbox run --once hands pending events to the publisher."""
    env.add({"n": 1}, {"n": 2})
    result = env("outbox", "run", "--publisher", f"{env.module}:publish", "--once")
    assert result.exit_code == 0, result.output
    assert env.sent() == ["orders.created", "orders.created"]


def test_run_takes_a_hold_and_refuses_a_bad_one(env: Env) -> None:
    """--hold is passed to the dispatcher; one not shorter than the lease is refused."""
    env.add({"n": 1})
    ok = env("outbox", "run", "--publisher", f"{env.module}:publish", "--once", "--hold", "0s")
    assert ok.exit_code == 0, ok.output
    assert env.sent() == ["orders.created"]
    bad = env("outbox", "run", "--publisher", f"{env.module}:publish", "--once", "--hold", "1h")
    assert bad.exit_code == 2
    assert "hold" in bad.output and "Traceback" not in bad.output


def test_run_needs_a_target(env: Env) -> None:
    """outbox run without --bus or --publisher exits 2 with a one-line reason."""
    result = env("outbox", "run", "--once")
    assert result.exit_code == 2
    assert "give --bus module:attr or --publisher module:attr" in result.output


def test_dead_lists_and_counts_dead_events(env: Env) -> None:
    """outbox dead --json lists dead events; outbox count counts them."""
    env.add({"n": 1}, {"n": 2})
    env.kill_all()
    listed = env("outbox", "dead", "--json")
    assert listed.exit_code == 0, listed.output
    assert '"last_error": "ConnectionError: broker down"' in listed.output
    counted = env("outbox", "count", "--aggregate-type", "order")
    assert counted.output.strip() == "2"


def test_retry_requeues_and_refuses_what_is_not_dead(env: Env) -> None:
    """outbox retry re-queues a dead event, then refuses it as not dead (exit 1)."""
    env.add({"n": 1})
    env.kill_all()
    assert "re-queued 1 event of 1" in env("outbox", "retry", "1").output
    again = env("outbox", "retry", "1")
    assert again.exit_code == 1
    assert "outbox event 1 is pending, not dead" in again.output


def test_archive_moves_delivered_events(env: Env) -> None:
    """outbox archive --older-than 0s moves every delivered event to the archive."""
    env.add({"n": 1})
    env("outbox", "run", "--publisher", f"{env.module}:publish", "--once")
    result = env("outbox", "archive", "--older-than", "0s")
    assert result.exit_code == 0, result.output
    assert "archived 1 event" in result.output
    with sqlite3.connect(env.db) as conn:
        assert conn.execute("SELECT count(*) FROM redrive_outbox_archive").fetchone() == (1,)


def test_bad_age_is_a_usage_error(env: Env) -> None:
    """A malformed --older-than exits 2 naming the option."""
    result = env("outbox", "archive", "--older-than", "soon")
    assert result.exit_code == 2
    assert "--older-than: expected a duration" in result.output


def test_dead_on_an_empty_outbox_says_so(env: Env) -> None:
    """outbox dead with nothing dead prints a line rather than nothing."""
    env.add({"n": 1})
    listed = env("outbox", "dead")
    assert listed.exit_code == 0, listed.output
    assert listed.output.strip() == "no dead outbox events"
