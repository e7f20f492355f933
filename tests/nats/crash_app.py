"""A consumer run as a child process by the NATS crash tests, and killed there.

Usage: python -m tests.nats.crash_app URL STREAM DURABLE DB MARKER MODE
- ``hang``: the handler touches MARKER, then waits forever (the test SIGKILLs the process).
- ``suicide``: the handler touches MARKER, then SIGKILLs its own process: a crash loop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from redrive import Event, RetryPolicy, open_store
from redrive.transports.nats import JetStreamConsumer

SUBJECT_SUFFIX = "work"
POLICY = RetryPolicy(max_attempts=1)
TIMINGS: dict[str, Any] = {"ack_wait": 1.0, "max_deliver": 2, "store_retry_delay": 0.3, "batch": 5}


async def main(url: str, stream: str, durable: str, db: str, marker: str, mode: str) -> None:
    consumer = JetStreamConsumer(
        open_store(f"sqlite:///{db}"), servers=url, stream=stream, durable=durable, **TIMINGS
    )

    async def work(event: Event) -> None:
        Path(marker).touch()
        if mode == "suicide":
            os.kill(os.getpid(), signal.SIGKILL)
        await asyncio.Event().wait()

    subject = f"{stream.lower()}.{SUBJECT_SUFFIX}"
    consumer.subscribe(subject, work, name="work", policy=POLICY)
    async with consumer:
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))
