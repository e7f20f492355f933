"""A consumer SIGKILLed before it commits: everything is redelivered and processed, and
the poison message is still one dead letter."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from redrive import NonRetriableError, RetryPolicy
from redrive.models import Event, Status
from redrive.service import Filter
from redrive.stores.sqlite import SQLiteStore
from tests.helpers import eventually, wait_for
from tests.kafka.conftest import Broker
from tests.kafka.support import committed, create_topic, depth, produce, read
from tests.kafka.test_consumer import consumer_for

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
REDRIVE = str(Path(sys.executable).with_name("redrive"))


async def test_sigkill_before_commit_redelivers_and_records_one_dead_letter(
    broker: Broker, tmp_path: Path, names: Any
) -> None:
    """A child that handled every message (the poison one recorded and on the DLQ topic)
    and is SIGKILLed before any commit: the next member gets all of them again, the store
    still holds one dead letter, and the offsets are committed."""
    create_topic(broker.bootstrap, names.topic)
    create_topic(broker.bootstrap, f"{names.topic}.dlq")
    produce(broker.bootstrap, names.topic, [{"n": n, "poison": n == 2} for n in range(5)])
    db = tmp_path / "redrive.db"
    crash_child(broker, tmp_path, names, db)
    assert committed(broker.bootstrap, names.group, names.topic) < 0  # nothing committed

    store = SQLiteStore(db)
    try:
        (first,) = store.find(Filter(), limit=10).items
        seen: list[int] = []
        consumer = consumer_for(broker, store, names, policy=RetryPolicy(max_attempts=1))

        @consumer.handler(names.topic, name="ship")
        async def ship(event: Event) -> None:
            seen.append(event.payload["n"])
            if event.payload["poison"]:
                raise NonRetriableError("cannot ship")

        async with consumer:
            await eventually(lambda: seen == [0, 1, 2, 3, 4], timeout=40)
            await eventually(lambda: committed(broker.bootstrap, names.group, names.topic) == 5)
        (record,) = store.find(Filter(), limit=10).items
        assert record.id == first.id
        assert record.status == Status.DEAD
        copies = await asyncio.to_thread(read, broker.bootstrap, f"{names.topic}.dlq", 2)
        ids = {dict(m.headers() or [])["redrive-record-id"] for m in copies}
        assert ids == {record.id.encode()}  # the DLQ topic is at-least-once: one id
    finally:
        store.close()


def crash_child(broker: Broker, tmp_path: Path, names: Any, db: Path) -> None:
    """Run ``redrive kafka run`` on crash_app until it handled all five messages and its
    DlqMessage is on the DLQ topic, then SIGKILL it."""
    notes = tmp_path / "notes"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDRIVE_")} | {
        "PYTHONPATH": str(ROOT),
        "REDRIVE_STORE_URL": f"sqlite:///{db}",
        "KAFKA_BOOTSTRAP": broker.bootstrap,
        "KAFKA_GROUP": names.group,
        "KAFKA_TOPIC": names.topic,
        "CRASH_NOTES": str(notes),
    }
    with (tmp_path / "child.log").open("wb") as log:
        child = subprocess.Popen(
            [REDRIVE, "kafka", "run", "--app", "tests.kafka.crash_app:make"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(
                lambda: (
                    notes.exists()
                    and notes.read_text().split() == list("01234")
                    and depth(broker.bootstrap, f"{names.topic}.dlq") == 1
                ),
                timeout=30,
                what="the child handled all five and wrote the DlqMessage",
            )
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
