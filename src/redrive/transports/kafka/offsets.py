"""The commit tracker: which offset of each partition is safe to commit.

Kafka commits one offset per partition: "everything below this is done". Messages finish
out of order (a short in-place retry, a DLQ produce waiting for its acknowledgement), so
the tracker commits only below the lowest offset still unfinished. A message is finished
when every handler succeeded, or its failure record is durable in the store and (when the
DLQ topic is on) its DlqMessage was acknowledged by the broker. A crash before the commit
redelivers the unfinished messages and those above them: at-least-once.
"""

from __future__ import annotations

import collections
import dataclasses

TopicPartitionKey = tuple[str, int]


@dataclasses.dataclass(slots=True)
class _Partition:
    pending: collections.deque[int] = dataclasses.field(default_factory=collections.deque)
    done: set[int] = dataclasses.field(default_factory=set)
    next_offset: int | None = None  # one past the highest finished prefix
    committed: int | None = None  # what was last handed out for commit


class CommitTracker:
    """Offsets received and finished, per partition; not thread-safe (one event loop).

    .. versionadded:: 0.1
    """

    def __init__(self) -> None:
        self._partitions: dict[TopicPartitionKey, _Partition] = {}

    def received(self, tp: TopicPartitionKey, offset: int) -> None:
        """A message at ``offset`` was handed out (offsets of a partition grow)."""
        part = self._partitions.get(tp)
        if part is None:
            part = self._partitions[tp] = _Partition()
        part.pending.append(offset)

    def finished(self, tp: TopicPartitionKey, offset: int) -> None:
        """The message at ``offset`` is done or durable."""
        part = self._partitions.get(tp)
        if part is None:  # revoked meanwhile: its commit belongs to the new owner
            return
        pending = part.pending
        if pending and pending[0] == offset:
            pending.popleft()
            part.next_offset = offset + 1
            done = part.done
            while pending and pending[0] in done:
                finished = pending.popleft()
                done.discard(finished)
                part.next_offset = finished + 1
        else:
            part.done.add(offset)

    def unfinished(self, tp: TopicPartitionKey) -> int:
        """How many messages of ``tp`` are received but not finished."""
        part = self._partitions.get(tp)
        return 0 if part is None else len(part.pending) - len(part.done)

    def lowest_unfinished(self, tp: TopicPartitionKey) -> int | None:
        """The offset the next commit of ``tp`` may not pass, if any is unfinished."""
        part = self._partitions.get(tp)
        if part is None or not part.pending:
            return None
        return part.pending[0]

    def committable(self) -> dict[TopicPartitionKey, int]:
        """The offsets to commit now (one past each finished prefix), marking them handed
        out: each offset is returned once."""
        due = {}
        for tp, part in self._partitions.items():
            if part.next_offset is not None and part.next_offset != part.committed:
                due[tp] = part.next_offset
                part.committed = part.next_offset
        return due

    def safe_offsets(self, tps: list[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """One past each finished prefix of ``tps``, whether handed out before or not."""
        return {
            tp: part.next_offset
            for tp in tps
            if (part := self._partitions.get(tp)) is not None and part.next_offset is not None
        }

    def forget(self, tps: list[TopicPartitionKey]) -> None:
        """Drop the partitions (revoked): later finishes of their messages are ignored."""
        for tp in tps:
            self._partitions.pop(tp, None)

    def reset(self, tp: TopicPartitionKey) -> None:
        """Start ``tp`` afresh (a new assignment: offsets may go back to the committed one)."""
        self._partitions[tp] = _Partition()
