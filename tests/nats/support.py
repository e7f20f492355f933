"""What the NATS tests share: streams on the session's server, consumers with short timings."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from nats.js import api

from redrive.stores.base import Store
from redrive.transports.nats import JetStreamConsumer
from tests.nats.names import Names

FAST = {"ack_wait": 2.0, "store_retry_delay": 0.3, "batch": 20}
"""Consumer timings for tests: a delivery expires after 2 s, a store outage naks for 0.3 s."""


async def make_stream(
    js: Any, names: Names, retention: api.RetentionPolicy = api.RetentionPolicy.LIMITS
) -> None:
    """The test's source stream, capturing ``<subject>.>``."""
    await js.add_stream(
        name=names.stream,
        subjects=[f"{names.subject}.>"],
        retention=retention,
        storage=api.StorageType.FILE,
    )


def consumer(store: Store, url: str, names: Names, **options: Any) -> JetStreamConsumer:
    """A consumer on the test's stream, with test timings (overridable)."""
    return JetStreamConsumer(
        store,
        servers=url,
        stream=names.stream,
        durable=names.durable,
        options=None,
        poll_interval=0.05,
        **{**FAST, **options},
    )


async def publish(
    js: Any, subject: str, payload: Any, headers: Mapping[str, str] | None = None
) -> int:
    """Publish JSON (or raw bytes) and return the stream sequence."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    ack = await js.publish(subject, data, headers=dict(headers) if headers else None)
    return int(ack.seq)


async def settled(js: Any, names: Names) -> bool:
    """True once the durable has nothing pending or unacked."""
    info = await js.consumer_info(names.stream, names.durable)
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)


async def dlq_messages(js: Any, stream: str) -> list[Any]:
    """Every message in a DLQ stream, read back by sequence (direct gets)."""
    info = await js.stream_info(stream)
    found = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        if info.state.messages == 0:
            break
        found.append(await js.get_msg(stream, seq, direct=True))
    return found


async def wait(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    """Poll an async check (a server query) until it is truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"server condition not met within {timeout}s ({value!r})")
        await asyncio.sleep(0.02)
