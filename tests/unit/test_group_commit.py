"""The group commit behind the engine's writes: batches, one thread of its own, errors."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Sequence

import pytest

from redrive.core.writer import GroupCommit

_caller: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="none")


class _Recorder:
    """A commit that doubles each item and notes its thread, batch and context."""

    def __init__(self) -> None:
        self.threads: set[int] = set()
        self.batches: list[list[int]] = []
        self.contexts: list[str] = []

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.threads.add(threading.get_ident())
        self.batches.append(list(items))
        self.contexts.append(_caller.get())
        if any(item < 0 for item in items):
            raise ValueError("negative")
        return [item * 2 for item in items]


class TestGroupCommit:
    def test_concurrent_items_share_batches_on_one_thread(self) -> None:
        """Items submitted together are committed together, every batch on the same thread
        (not the loop's), and each item gets its own result."""
        commit = _Recorder()

        async def main() -> list[int]:
            group: GroupCommit[int, int] = GroupCommit(commit, max_batch=10, name="test")
            results = await asyncio.gather(*(group.submit(i) for i in range(25)))
            await group.close()
            return list(results)

        assert asyncio.run(main()) == [i * 2 for i in range(25)]
        assert [len(batch) for batch in commit.batches] == [10, 10, 5]
        assert len(commit.threads) == 1 and threading.get_ident() not in commit.threads

    def test_what_comes_before_the_thread_runs_joins_the_batch(self) -> None:
        """The batch is taken when the commit's thread starts it: an item submitted after
        the loop handed the batch over, while the thread was still busy, commits with it."""
        commit = _Recorder()
        release = threading.Event()

        async def main() -> list[int]:
            group: GroupCommit[int, int] = GroupCommit(commit, max_batch=10, name="test")
            first = await group.submit(1)  # the group's thread now exists
            assert group._thread is not None
            busy = asyncio.wrap_future(group._thread.submit(release.wait))
            second = group.submit(2)
            for _ in range(3):  # let the flush hand its batch to the busy thread
                await asyncio.sleep(0)
            third = group.submit(3)
            release.set()
            await busy
            results = [first, await second, await third]
            await group.close()
            return results

        assert asyncio.run(main()) == [2, 4, 6]
        assert commit.batches == [[1], [2, 3]]

    def test_runs_in_the_callers_context(self) -> None:
        """The commit sees the context variables of the task that started the batch."""
        commit = _Recorder()

        async def main() -> None:
            _caller.set("publisher")
            group: GroupCommit[int, int] = GroupCommit(commit, max_batch=10, name="test")
            await group.submit(1)
            await group.close()

        asyncio.run(main())
        assert commit.contexts == ["publisher"]

    def test_one_bad_item_fails_alone(self) -> None:
        """A batch that fails is committed item by item: only the bad one gets the error."""
        commit = _Recorder()

        async def main() -> tuple[list[int | BaseException], GroupCommit[int, int]]:
            group: GroupCommit[int, int] = GroupCommit(commit, max_batch=10, name="test")
            results = await asyncio.gather(
                *(group.submit(i) for i in (1, -1, 2)), return_exceptions=True
            )
            await group.close()
            return list(results), group

        results, _group = asyncio.run(main())
        assert results[0] == 2 and results[2] == 4
        assert isinstance(results[1], ValueError)
        assert commit.batches[0] == [1, -1, 2] and [1] in commit.batches[1:]

    def test_close_ends_the_thread_and_a_later_submit_starts_one(self) -> None:
        """close() stops the group's thread; the group still works afterwards."""
        commit = _Recorder()

        def alive() -> int:
            return sum(1 for t in threading.enumerate() if t.name.startswith("test-close"))

        async def main() -> tuple[int, int, int]:
            group: GroupCommit[int, int] = GroupCommit(commit, max_batch=10, name="test-close")
            await group.submit(1)
            running = alive()
            await group.close()
            after_close = alive()
            assert await group.submit(2) == 4
            await group.close()
            return running, after_close, alive()

        assert asyncio.run(main()) == (1, 0, 0)
        assert commit.batches == [[1], [2]]

    def test_the_store_error_reaches_the_submitter(self) -> None:
        """A lone item whose commit fails raises the store's error to its submitter."""

        def broken(items: Sequence[int]) -> list[int]:
            raise RuntimeError("store down")

        async def main() -> None:
            group: GroupCommit[int, int] = GroupCommit(broken, max_batch=10, name="test")
            with pytest.raises(RuntimeError, match="store down"):
                await group.submit(1)
            await group.close()

        asyncio.run(main())
