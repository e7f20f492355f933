"""A small app run as a subprocess by the crash tests, then killed with SIGKILL.

Usage: python -m tests.integration.crash_app DB_PATH MARKER_PATH MODE
- ``publish``: publish 50 failing events, print "published", then wait to be killed.
- ``hang``: publish one event that fails, then hang inside its retry (after touching
  MARKER_PATH) until killed, holding the record's lease.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from redrive import Event, EventBus, RetryPolicy, open_store


async def main(db: str, marker: str, mode: str) -> None:
    bus = EventBus(open_store(f"sqlite:///{db}"), poll_interval=0.02, lease=timedelta(seconds=1))
    attempts = 0

    async def handler(event: Event) -> None:
        nonlocal attempts
        attempts += 1
        if mode == "hang" and attempts > 1:
            Path(marker).touch()
            await asyncio.Event().wait()  # hold the lease until SIGKILL
        raise ConnectionError("downstream unavailable")

    bus.subscribe("t", handler, name="h", policy=RetryPolicy(initial_delay=0.01, max_attempts=5))
    async with bus:
        for n in range(50 if mode == "publish" else 1):
            await bus.publish("t", {"n": n})
        print("published", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
