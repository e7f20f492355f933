"""``redrive nats ...`` and ``redrive retry`` (both ways) for NATS dead letters."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from redrive import Event, RetryPolicy, Status
from redrive.stores.base import Filter
from redrive.stores.sqlite import SQLiteStore
from tests.cli.cli_support import Cli
from tests.helpers import eventually, wait_for
from tests.nats.names import Names
from tests.nats.support import consumer, dlq_messages, make_stream, publish, settled, wait

pytestmark = pytest.mark.nats

ONCE = RetryPolicy(max_attempts=1)


@pytest.fixture
def cli(tmp_path: Path, nats_url: str, names: Names) -> Cli:
    """``redrive`` on a fresh SQLite file, with a redrive.toml naming the test's stream."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "redrive.toml").write_text(
        f'[nats]\nservers = ["{nats_url}"]\nstream = "{names.stream}"\n'
        f'durable = "{names.durable}"\n'
    )
    return Cli(db=tmp_path / "redrive.db", workdir=work)


async def run_cli(cli: Cli, *args: str) -> Any:
    """The CLI in a thread: its commands run their own event loop."""
    return await asyncio.to_thread(cli, *args)


async def dead_letter(
    nc: Any, nats_url: str, names: Names, store: SQLiteStore, fail: dict[str, bool]
) -> tuple[Any, list[Event]]:
    """Run a consumer whose handler fails while ``fail["now"]``; return (consumer, seen)."""
    js = nc.jetstream()
    await make_stream(js, names)
    seen: list[Event] = []
    c = consumer(store, nats_url, names)

    @c.handler(names.of("created"), name="bill", policy=ONCE)
    async def bill(event: Event) -> None:
        seen.append(event)
        if fail["now"]:
            raise ValueError("no such customer")

    @c.handler(names.of("created"), name="email", policy=ONCE)
    async def email(event: Event) -> None:
        seen.append(event)

    return c, seen


async def test_plain_retry_runs_only_the_failed_handler_in_the_consumer(
    nc: Any, nats_url: str, names: Names, cli: Cli
) -> None:
    """`redrive retry ID` schedules the record; the consumer's scheduler runs that handler."""
    store = SQLiteStore(cli.db)
    fail = {"now": True}
    c, seen = await dead_letter(nc, nats_url, names, store, fail)
    async with c:
        await publish(nc.jetstream(), names.of("created"), {"order": 3})
        (record,) = await eventually(lambda: store.find(Filter(), limit=5).items)
        fail["now"] = False
        result = await run_cli(cli, "retry", record.id)
        assert result.exit_code == 0, result.output
        await eventually(lambda: getattr(store.get(record.id), "status", None) == Status.RESOLVED)
    assert len(seen) == 3  # bill, email, then bill again: email never re-ran
    assert [e.payload for e in seen] == [{"order": 3}] * 3
    assert store.list_audit(limit=5)[0].action == "retry"
    store.close()


async def test_republish_sends_the_message_again_with_a_fresh_id(
    nc: Any, nats_url: str, names: Names, cli: Cli
) -> None:
    """--republish: the original body back on its subject, Redrive-Replay-Of, a new msg id."""
    store = SQLiteStore(cli.db)
    fail = {"now": True}
    c, seen = await dead_letter(nc, nats_url, names, store, fail)
    async with c:
        headers = {"Nats-Msg-Id": "order-3", "Redrive-Tenant-Id": "acme"}
        await publish(nc.jetstream(), names.of("created"), {"order": 3}, headers)
        (record,) = await eventually(lambda: store.find(Filter(), limit=5).items)
        await wait(lambda: settled(nc.jetstream(), names))
        fail["now"] = False
        result = await run_cli(cli, "retry", "--republish", record.id)
        assert result.exit_code == 0, result.output
        assert "republished 1 dead letter" in result.output
        await eventually(lambda: len(seen) == 4)  # both handlers see it again
    replayed = seen[-1]
    assert replayed.headers["Redrive-Replay-Of"] == record.id
    assert replayed.id != "order-3" and replayed.id.startswith("redrive-replay:")
    assert replayed.payload == {"order": 3} and replayed.tenant_id == "acme"
    resolved = store.get(record.id)
    assert resolved is not None and resolved.status == Status.RESOLVED
    actions = [entry.action for entry in store.list_audit(limit=5)]
    assert "republish" in actions and "resolve" in actions
    store.close()


async def test_republish_refuses_records_with_no_transport(cli: Cli) -> None:
    """A record from an EventBus has no subject to go back to: a one-line error, exit 2."""
    from tests.factories import make_record

    (record,) = cli.add(make_record())
    result = await run_cli(cli, "retry", "--republish", record.id)
    assert result.exit_code == 2
    assert "no transport origin" in result.output


async def test_provision_twice_then_dlq_depth(nc: Any, names: Names, cli: Cli) -> None:
    """The second provision changes nothing and says so; `nats dlq` shows the depth."""
    await make_stream(nc.jetstream(), names)
    first = await run_cli(cli, "nats", "provision")
    assert first.exit_code == 0, first.output
    assert f"create stream {names.stream}_DLQ" in first.output
    assert f"create consumer {names.stream}/{names.durable}" in first.output
    assert "max_deliver=6" in first.output  # the default policy's 3 attempts + 3
    second = await run_cli(cli, "nats", "provision")
    assert second.exit_code == 0 and "nothing to change" in second.output
    depth = await run_cli(cli, "--json", "nats", "dlq", f"{names.stream}_DLQ")
    assert depth.exit_code == 0, depth.output
    assert json.loads(depth.output)[0]["messages"] == 0


async def test_provision_without_the_stream_is_a_one_line_error(nc: Any, cli: Cli) -> None:
    """A source stream that does not exist: exit 2 and the reason, no traceback."""
    result = await run_cli(cli, "nats", "provision")
    assert result.exit_code == 2
    assert "no stream" in result.output and "Traceback" not in result.output


async def test_an_unreachable_server_is_a_one_line_error(cli: Cli) -> None:
    """No NATS at the URL: exit 1 naming the server."""
    result = await run_cli(cli, "nats", "dlq", "--servers", "nats://127.0.0.1:1")
    assert result.exit_code == 1
    assert "cannot connect to NATS at nats://127.0.0.1:1" in result.output


def test_nats_run_serves_the_app_until_sigterm(nats_url: str, names: Names, cli: Cli) -> None:
    """`redrive nats run --app` consumes, records a dead letter, and stops on SIGTERM."""

    async def setup() -> None:
        import nats

        client = await nats.connect(nats_url)
        await make_stream(client.jetstream(), Names(names.stream, names.stream.lower(), ""))
        await publish(client.jetstream(), f"{names.stream.lower()}.work", {"fail": True})
        await client.drain()

    asyncio.run(setup())
    cmd = [
        str(Path(cli.run.__globals__["REDRIVE"])),
        "nats",
        "run",
        "--app",
        "tests.nats.run_app:make",
    ]
    proc = subprocess.Popen(cmd, cwd=cli.workdir, env=cli.env(), stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: cli.db.exists() and _count(cli.db) == 1, timeout=30, what="dead letter")
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "consuming" in err and "stopped: processed 1" in err


def _count(db: Path) -> int:
    store = SQLiteStore(db)
    try:
        return store.count(Filter(statuses=(Status.DEAD,)))
    finally:
        store.close()


async def test_import_reads_seed_style_and_redrive_copies_once(
    nc: Any, nats_url: str, names: Names, cli: Cli, tmp_path: Path
) -> None:
    """`redrive nats import STREAM` twice: seed-style messages (metadata in headers or in a
    JSON envelope) and redrive copies become dead letters once."""
    js = nc.jetstream()
    legacy = f"{names.stream}LEGACY_DLQ"
    root = f"legacy{names.subject}"
    await js.add_stream(name=legacy, subjects=[f"{root}.dlq.>"])
    await js.publish(
        f"{root}.dlq.field.created",
        b'{"field": 1}',
        headers={
            "X-Original-Subject": "sahool.field.created",
            "X-Error-Type": "TimeoutError",
            "X-Failure-Reason": "Connection timeout",
            "X-Retry-Count": "3",
            "X-Handler-Function": "handle_field_created",
        },
    )
    envelope = {
        "metadata": {
            "original_subject": "sahool.weather.alert",
            "original_event_id": "ev-9",
            "error_type": "KeyError",
            "failure_reason": "'station'",
            "retry_count": 1,
            "error_traceback": "Traceback...",
            "failure_timestamp": "2026-01-01T12:00:00Z",
        },
        "original_message": json.dumps({"alert": "storm"}),
    }
    await js.publish(f"{root}.dlq.weather.alert", json.dumps(envelope).encode())

    first = await run_cli(cli, "nats", "import", legacy, "--prefix", f"{root}.dlq")
    assert first.exit_code == 0, first.output
    assert "read 2 messages" in first.output and "2 added" in first.output
    second = await run_cli(cli, "nats", "import", legacy, "--prefix", f"{root}.dlq")
    assert "0 added, 2 already in the store" in second.output

    store = SQLiteStore(cli.db)
    records = {r.topic: r for r in store.find(Filter(), limit=10).items}
    field = records["sahool.field.created"]
    assert (field.error_type, field.error_message, field.attempts, field.handler) == (
        "TimeoutError",
        "Connection timeout",
        3,
        "handle_field_created",
    )
    assert field.payload == {"field": 1} and field.origin["dlq_stream"] == legacy
    weather = records["sahool.weather.alert"]
    assert weather.event.id == "ev-9" and weather.payload == {"alert": "storm"}
    assert weather.traceback == "Traceback..." and weather.error_type == "KeyError"
    assert weather.dead_at is not None and weather.dead_at.year == 2026
    store.close()

    # redrive's own copies keep their record ids: imported into another store, once.
    source = SQLiteStore(tmp_path / "source.db")
    c = consumer(source, nats_url, names)
    c.subscribe(names.of("x"), _fail, name="h", policy=ONCE)
    await make_stream(js, names)
    async with c:
        await publish(js, names.of("x"), {"k": "v"}, {"Redrive-Correlation-Id": "c-2"})
        (original,) = await eventually(lambda: source.find(Filter(), limit=5).items)
        await eventually(lambda: c.stats["dlq_published"] == 1)
    assert len(await dlq_messages(js, f"{names.stream}_DLQ")) == 1
    imported = await run_cli(cli, "nats", "import", f"{names.stream}_DLQ")
    assert "1 added" in imported.output, imported.output
    again = SQLiteStore(cli.db).get(original.id)
    assert again is not None and again.handler == "h" and again.payload == {"k": "v"}
    assert again.event.correlation_id == "c-2" and again.fingerprint == original.fingerprint
    assert again.origin["sequence"] == original.origin["sequence"]
    source.close()


def _fail(event: Event) -> None:
    raise ValueError("nope")
