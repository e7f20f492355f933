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
import types
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
        waiting.append(loop.create_task(_resume(coro, first), context=context))
    if waiting:
        await asyncio.gather(*waiting)


@types.coroutine
def _resume(coro: Step, waiting_on: Any) -> Generator[Any, Any, None]:
    """Finish a started coroutine inside a task: hand the task what the coroutine waits
    on, and pass back whatever the task sends or throws (results, cancellation)."""
    while True:
        try:
            value = yield waiting_on
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # cancellation included: the coroutine decides
            try:
                waiting_on = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting_on = coro.send(value)
            except StopIteration:
                return
