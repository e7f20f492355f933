"""Deliver a batch concurrently without a task per event when deliveries finish at once.

A publisher that buffers (or a no-op) finishes without ever waiting, and a task per event
then costs more than the delivery itself: the event loop schedules each task, runs it,
and runs its done callback. :func:`gather_eagerly` runs each coroutine inline up to its
first wait, and only a coroutine that really waits gets a task to finish it (what Python
3.12's ``asyncio.eager_task_factory`` does for every task). Deliveries still overlap:
while one waits on the network, the next one starts.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine, Generator
from typing import Any

Step = Coroutine[Any, Any, None]


async def gather_eagerly(coros: list[Step]) -> None:
    """Run every coroutine to its end, concurrently; raise the first error, if any."""
    waiting: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    for index, coro in enumerate(coros):
        context = contextvars.copy_context()  # as a task would: its own context
        try:
            first = context.run(coro.send, None)
        except StopIteration:
            continue  # finished without waiting: no task needed
        except BaseException:
            for task in waiting:
                task.cancel()
            for never_started in coros[index + 1 :]:
                never_started.close()
            raise
        waiting.append(loop.create_task(_Resume(coro, first), context=context))
    if waiting:
        await asyncio.gather(*waiting)


class _Resume(Coroutine[Any, Any, None]):
    """The rest of a started coroutine, run by a task: the task's first step gets what
    the coroutine already waits on; every later send or throw (results, cancellation,
    even before that first step) goes to the coroutine itself."""

    def __init__(self, coro: Step, waiting_on: Any) -> None:
        self._coro = coro
        self._waiting_on: Any = waiting_on
        self._started = False

    def send(self, value: Any) -> Any:
        if not self._started:
            self._started = True
            return self._waiting_on
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._started = True
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)  # the old three-argument form, if asked

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, None]:
        return (yield from self._coro.__await__())
