"""Eager starts finish coroutines exactly as tasks would: results, errors, cancellation."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from redrive.transports.nats.eager import start_eagerly

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="outer")


async def test_a_coroutine_that_never_suspends_needs_no_task() -> None:
    """Done at once: no task, and its context changes stay in its own context."""
    seen = []

    async def quick() -> None:
        VAR.set("inner")
        seen.append(VAR.get())

    assert start_eagerly(quick()) is None
    assert seen == ["inner"] and VAR.get() == "outer"


async def test_a_suspended_coroutine_gets_results_and_errors_of_what_it_awaits() -> None:
    """Futures, threads, sleeps and wait_for behave as under a task."""
    seen: list[object] = []

    async def slow() -> None:
        VAR.set("inner")
        seen.append(await asyncio.to_thread(lambda: 7))
        await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        try:
            await asyncio.wait_for(asyncio.Event().wait(), 0.01)
        except TimeoutError:
            seen.append("timeout")
        seen.append(VAR.get())

    task = start_eagerly(slow())
    assert task is not None
    await task
    assert seen == [7, "timeout", "inner"] and VAR.get() == "outer"


async def test_cancelling_the_task_cancels_the_coroutine_inside() -> None:
    """The coroutine sees CancelledError where it waits, and can clean up."""
    cleaned = []

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(True)

    task = start_eagerly(stuck())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == [True]


async def test_an_error_after_suspending_is_the_tasks_error() -> None:
    """An exception raised after the first suspension ends the task with it."""

    async def fails() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("late")

    task = start_eagerly(fails())
    assert task is not None
    with pytest.raises(RuntimeError, match="late"):
        await task


def test_an_error_before_suspending_is_raised_at_once() -> None:
    """An exception raised before any suspension propagates from the call."""

    async def fails() -> None:
        raise RuntimeError("early")

    with pytest.raises(RuntimeError, match="early"):
        start_eagerly(fails())
