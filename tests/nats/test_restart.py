"""A nats-server restart under a running consumer: it reconnects, and nothing is lost."""

from __future__ import annotations

import tempfile
from pathlib import Path

import nats
import pytest

from redrive import RetryPolicy
from redrive.stores.base import Filter
from redrive.stores.sqlite import SQLiteStore
from tests.helpers import eventually
from tests.nats.conftest import running_server
from tests.nats.names import Names
from tests.nats.support import consumer, make_stream, publish

pytestmark = pytest.mark.nats


async def test_the_consumer_rides_out_a_server_restart(
    names: Names, sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    """Messages stored before and published after a restart are all handled once."""
    store_dir = tempfile.mkdtemp(prefix="redrive-nats-restart-", dir=tmp_path)
    seen: list[int] = []
    with running_server(store_dir) as server:
        nc = await nats.connect(server.url)
        await make_stream(nc.jetstream(), names)
        for n in range(5):
            await publish(nc.jetstream(), names.of("n"), n)
        await nc.close()
        c = consumer(sqlite_store, server.url, names)
        c.subscribe(
            names.of("n"),
            lambda e: seen.append(e.payload),
            name="h",
            policy=RetryPolicy(max_attempts=3),
        )
        await c.start()
        await eventually(lambda: sorted(seen) == list(range(5)))
    # the server is down here; the same dir and port bring it (and the stream) back
    with running_server(store_dir, server.port, server.monitor) as again:
        try:
            nc = await nats.connect(again.url)
            for n in range(5, 10):
                await publish(nc.jetstream(), names.of("n"), n)
            await nc.close()
            await eventually(lambda: sorted(set(seen)) == list(range(10)), timeout=30)
        finally:
            await c.stop()
    assert sqlite_store.count(Filter(statuses=())) == 0
    assert len(seen) >= 10
