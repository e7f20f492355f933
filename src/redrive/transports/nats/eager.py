"""Eager starts: run a coroutine until it first suspends, and make a task only then.

Python 3.12 has ``asyncio.eager_task_factory``; on 3.11 this is the same idea for the
consumer's messages, most of which (quick handlers, an ack) finish without suspending, so
they cost no task and no extra trips through the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any


def start_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run ``coro`` now, in a copy of the current context; if it suspends, return the task
    that finishes it (in that same context), else None. Its errors propagate."""
    context = contextvars.copy_context()
    try:
        yielded = context.run(coro.send, None)
    except StopIteration:
        return None
    return asyncio.create_task(_finish(coro, yielded), context=context)


async def _finish(coro: Coroutine[Any, Any, None], yielded: Any) -> None:
    """Drive a coroutine that suspended on ``yielded`` (a future, or None for a bare
    yield) to its end, as the task it never had would."""
    while True:
        try:
            if yielded is None:
                await asyncio.sleep(0)
            else:  # as Task.__step does: take the future over from the coroutine
                yielded._asyncio_future_blocking = False
                await yielded  # the coroutine reads its result (or error) itself
        except asyncio.CancelledError:
            if yielded is None or not yielded.cancelled():  # this task was cancelled
                try:
                    yielded = coro.throw(asyncio.CancelledError())
                except StopIteration:
                    return
                continue
        except Exception:  # noqa: S110 - the future's error: the coroutine raises it itself
            pass
        try:
            yielded = coro.send(None)
        except StopIteration:
            return
