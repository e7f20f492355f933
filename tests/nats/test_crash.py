"""Processes that die: a SIGKILLed consumer loses nothing, and a message that kills every
process it reaches (a crash loop) is caught from the MAX_DELIVERIES advisory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from nats.js import api

from redrive import Event, Status
from redrive.stores.base import Filter
from redrive.stores.sqlite import SQLiteStore
from tests.helpers import eventually, wait_for
from tests.nats import crash_app
from tests.nats.names import Names
from tests.nats.support import consumer, dlq_messages, make_stream, publish, settled, wait

pytestmark = pytest.mark.nats

ROOT = Path(__file__).resolve().parents[2]


def start_child(
    url: str, names: Names, db: Path, marker: Path, mode: str
) -> subprocess.Popen[bytes]:
    """The crash app as a child process."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.nats.crash_app",
            url,
            names.stream,
            names.durable,
            str(db),
            str(marker),
            mode,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def subject(names: Names) -> str:
    return f"{names.stream.lower()}.{crash_app.SUBJECT_SUFFIX}"


async def test_a_consumer_killed_mid_handler_loses_nothing(
    nc: Any, nats_url: str, names: Names, db_path: Path, tmp_path: Path
) -> None:
    """SIGKILL while a handler runs: redelivered after ack_wait, processed once, no record."""
    js = nc.jetstream()
    names = Names(stream=names.stream, subject=names.stream.lower(), durable=names.durable)
    await make_stream(js, names)
    marker = tmp_path / "marker"
    child = start_child(nats_url, names, db_path, marker, "hang")
    try:
        await publish(js, subject(names), {"n": 1})
        wait_for(marker.exists, timeout=30, what="the child's handler started")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL

    store = SQLiteStore(db_path)
    done: list[Event] = []
    c = consumer(store, nats_url, names, **crash_app.TIMINGS)
    c.subscribe(subject(names), done.append, name="work", policy=crash_app.POLICY)
    async with c:
        (event,) = await eventually(lambda: list(done), timeout=20)
        await wait(lambda: settled(js, names))
    assert event.payload == {"n": 1} and len(done) == 1
    assert store.count(Filter(statuses=())) == 0
    store.close()


@pytest.mark.parametrize("retention", [api.RetentionPolicy.LIMITS, api.RetentionPolicy.WORK_QUEUE])
async def test_a_crash_loop_is_caught_from_the_advisory_as_worker_lost(
    nc: Any,
    nats_url: str,
    names: Names,
    db_path: Path,
    tmp_path: Path,
    retention: api.RetentionPolicy,
) -> None:
    """A message whose every delivery kills its process is recorded dead as WorkerLost, with
    its DLQ copy, and deleted from a work-queue stream."""
    js = nc.jetstream()
    names = Names(stream=names.stream, subject=names.stream.lower(), durable=names.durable)
    await make_stream(js, names, retention)
    seq = await publish(js, subject(names), {"boom": True})
    for delivery in range(int(crash_app.TIMINGS["max_deliver"])):
        marker = tmp_path / f"marker{delivery}"
        child = start_child(nats_url, names, db_path, marker, "suicide")
        child.wait(60)
        assert child.returncode == -signal.SIGKILL and marker.exists()

    store = SQLiteStore(db_path)
    ran: list[Event] = []
    c = consumer(store, nats_url, names, **crash_app.TIMINGS)
    c.subscribe(subject(names), ran.append, name="work", policy=crash_app.POLICY)
    async with c:  # its waiting pull makes the server send the (lazy) advisory
        (record,) = await eventually(lambda: store.find(Filter(), limit=5).items, timeout=20)
        await eventually(lambda: c.stats["crash_loops"] == 1)
    assert ran == []  # the server delivers it no more
    assert record.status == Status.DEAD and record.error_type.endswith("WorkerLost")
    assert record.origin["sequence"] == seq and record.origin["delivered"] == 2
    assert record.payload == {"boom": True}
    (copy,) = await dlq_messages(js, f"{names.stream}_DLQ")
    assert copy.headers["Redrive-Error-Type"].endswith("WorkerLost")
    state = (await js.stream_info(names.stream)).state
    assert state.messages == (1 if retention == api.RetentionPolicy.LIMITS else 0)
    store.close()
