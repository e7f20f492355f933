"""Group commit for failure records: concurrent failures share one transaction.

Each ``write`` returns only once its own record is durable (or raises the store's error),
with the id the store keeps it under (a failure of an (event, handler) pair that already
has an open record is merged into that record),
so a crash after ``publish`` returns loses nothing. While one batch is being committed,
new records gather; the next commit takes all of them. Under no load a record is
committed alone at once; under load the batch grows by itself, with no timer to tune.
"""

from __future__ import annotations

import asyncio
import contextlib

from redrive.models import DeadLetter
from redrive.stores.base import Store


class BatchWriter:
    """Writes records to ``store`` in groups of up to ``max_batch``.

    .. versionadded:: 0.1
    """

    def __init__(self, store: Store, *, max_batch: int = 1000) -> None:
        self._store = store
        self._max_batch = max_batch
        self._pending: list[tuple[DeadLetter, asyncio.Future[str]]] = []
        self._task: asyncio.Task[None] | None = None

    async def write(self, record: DeadLetter) -> str:
        """Return the stored record's id once ``record`` is durable; raise the store's error
        if it could not be."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append((record, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush(), name="redrive-writer")
        return await future

    async def close(self) -> None:
        """Wait for everything written so far to be committed."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                ids = await asyncio.to_thread(self._store.add, [record for record, _ in batch])
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0][1], error=exc)
                else:  # one bad record must not fail the others: write them one by one
                    for record, future in batch:
                        await self._write_alone(record, future)
            else:
                for (_, future), stored in zip(batch, ids, strict=True):
                    _settle(future, stored)

    async def _write_alone(self, record: DeadLetter, future: asyncio.Future[str]) -> None:
        try:
            ids = await asyncio.to_thread(self._store.add, [record])
        except Exception as exc:
            _settle(future, error=exc)
        else:
            _settle(future, ids[0])


def _settle(
    future: asyncio.Future[str], stored: str = "", *, error: BaseException | None = None
) -> None:
    if future.done():  # its publisher was cancelled; the outcome is known anyway
        return
    if error is None:
        future.set_result(stored)
    else:
        future.set_exception(error)
