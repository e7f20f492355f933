"""A worker process for the multi-process tests: runs the scheduler for handler "h" of
topic "t", appending each event id it handles to OUT_FILE, until killed.

Usage: python -m tests.integration.worker_app DB_PATH OUT_FILE
"""

from __future__ import annotations

import asyncio
import sys

from redrive import Event, EventBus, open_store


async def main(db: str, out: str) -> None:
    bus = EventBus(open_store(f"sqlite:///{db}"), poll_interval=0.02, concurrency=8)
    with open(out, "a", buffering=1) as log:  # line-buffered: each line is written at once

        def handle(event: Event) -> None:
            log.write(event.id + "\n")

        bus.subscribe("t", handle, name="h")
        async with bus:
            print("ready", flush=True)
            await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
