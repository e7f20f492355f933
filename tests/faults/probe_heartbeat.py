"""A probe (not a test): when does a worker's heartbeat renew its lease after a short
PostgreSQL outage? It prints each lease extension's start and end relative to the outage.

Usage: ``python -m tests.faults.probe_heartbeat [OUTAGE_SECONDS]`` (default 1.0).

One retry holds a 2 s lease (heartbeat every 0.67 s); during it the server is stopped with
``-m immediate``, kept down for OUTAGE_SECONDS, and started again. The extensions are
timed by wrapping the store's ``extend_leases`` (instrumentation of a real store, for this
probe only). Seen before the fix (``connector.py`` then waited on the pool, whose
reconnect backoff is 1 s, 2 s, 4 s ...): after a 1.0 s outage (server up 1.44 s after the
stop), the extension started during the outage returned 2.94 s after the stop, 0.9 s after
the lease had run out. After it (calls connect on their own while the pool reconnects,
retries at most ``MAX_BACKOFF`` apart): server up 5.13 s after the stop on a loaded machine,
the extension returned 0.20 s later, and the next one followed at once.
The server is durable: with ``synchronous_commit=off`` (the tests' default) the crash
also drops the committed claim itself, and every extension then finds no lease (0).
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import timedelta
from typing import Any

from redrive import Event, EventBus, RetryPolicy, open_store
from redrive.models import Status
from redrive.stores.base import Filter
from tests.pg_server import PG_BIN, PgServer


async def probe(outage: float) -> None:
    pg = PgServer(durable=True).start()
    try:
        url = pg.create_database()
        store = open_store(url)
        watch = open_store(url)
        beats: list[tuple[float, float, object]] = []
        extend = store.extend_leases

        def timed(*args: Any, **kwargs: Any) -> int:
            began = time.monotonic()
            try:
                held = extend(*args, **kwargs)
            finally:
                beats.append((began, time.monotonic(), locals().get("held", "error")))
            return held

        store.extend_leases = timed  # type: ignore[method-assign]  # the probe's stopwatch
        marks: dict[str, float] = {}
        bus = EventBus(store, lease=timedelta(seconds=2), poll_interval=0.1)

        def pg_ctl(*args: str) -> None:
            log = str(pg.dir / "server.log")
            pg._run(str(PG_BIN / "pg_ctl"), "-D", str(pg.data), "-w", "-t", "60", "-l", log, *args)

        async def handle(event: Event) -> None:
            if "stop" in marks:
                return
            if not marks:
                marks["first"] = time.monotonic()
                raise ConnectionError("the first run fails")
            marks["stop"] = time.monotonic()
            await asyncio.to_thread(pg_ctl, "-m", "immediate", "stop")
            await asyncio.sleep(outage)  # the outage
            options = f"-k {pg.dir} -c listen_addresses=127.0.0.1 -p {pg.port}"
            await asyncio.to_thread(pg_ctl, "-o", options, "start")
            pg.pid = int((pg.data / "postmaster.pid").read_text().split()[0])
            marks["up"] = time.monotonic()
            await asyncio.sleep(4)  # the attempt goes on; the heartbeat should renew it

        bus.subscribe("t", handle, name="h", policy=RetryPolicy(initial_delay=0.05))
        resolved = Filter(statuses=(Status.RESOLVED,))
        async with bus:
            await bus.publish("t", {})
            deadline = time.monotonic() + 60
            while await asyncio.to_thread(watch.count, resolved) < 1:
                assert time.monotonic() < deadline, "the retry never finished"
                await asyncio.sleep(0.1)  # polling the store with a deadline
        stop = marks["stop"]
        print(f"outage {outage:.2f} s; server up {marks['up'] - stop:.2f} s after the stop")
        for began, ended, held in beats:
            print(f"  extension {began - stop:+.2f} s .. {ended - stop:+.2f} s: {held}")
        store.close()
        watch.close()
    finally:
        pg.stop()


if __name__ == "__main__":
    asyncio.run(probe(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0))
