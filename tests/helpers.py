"""Waiting without sleeping blindly (poll a condition until it holds or a timeout passes),
and a free port for the servers the tests start."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(check: Callable[[], T], *, timeout: float = 15.0, interval: float = 0.02) -> T:
    """Return ``check()`` once it is truthy; fail with its last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
        await asyncio.sleep(interval)


def wait_for(
    check: Callable[[], T],
    *,
    timeout: float = 15.0,
    interval: float = 0.02,
    what: str = "condition",
) -> T:
    """Synchronous ``eventually``; ``what`` names the condition in the failure."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s (last value: {value!r})")
        time.sleep(interval)


_given: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, never given out before in
    this process, and never one another pytest-xdist worker can get: worker ``gwN`` of ``W``
    takes only ports ``p`` with ``(p // 2) % W == N``, so two workers starting servers at
    the same moment cannot pick the same port (CONTRIBUTING.md, "Writing an xdist-safe
    fixture"). ``p // 2``: Linux hands out ports of one parity for ``bind(0)``."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    for _ in range(10_000):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if (port // 2) % workers == worker and port not in _given:
            _given.add(port)
            return port
    raise RuntimeError(f"no free port for xdist worker {worker} of {workers}")
