"""The consumer ``test_crash`` runs in a child process (``redrive kafka run --app``) and
SIGKILLs: it never commits on its own, and notes each message it handled."""

from __future__ import annotations

import os
from pathlib import Path

from redrive import NonRetriableError, RetryPolicy, open_store
from redrive.models import Event
from redrive.transports.kafka import KafkaConsumer

CLIENT = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "fetch.wait.max.ms": 100,
    "auto.offset.reset": "earliest",
}


def make() -> KafkaConsumer:
    """A consumer of ``KAFKA_TOPIC`` whose commits wait an hour."""
    notes = Path(os.environ["CRASH_NOTES"])
    consumer = KafkaConsumer(
        open_store(os.environ["REDRIVE_STORE_URL"]),
        bootstrap_servers=os.environ["KAFKA_BOOTSTRAP"],
        group=os.environ["KAFKA_GROUP"],
        client=CLIENT,
        policy=RetryPolicy(max_attempts=1),
        commit_every=10**9,
        commit_interval=3600,
    )

    @consumer.handler(os.environ["KAFKA_TOPIC"], name="ship")
    async def ship(event: Event) -> None:
        with notes.open("a") as out:
            out.write(f"{event.payload['n']}\n")
        if event.payload.get("poison"):
            raise NonRetriableError("cannot ship")

    return consumer
