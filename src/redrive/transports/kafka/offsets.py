"""The commit tracker: which offset of each partition is safe to commit.

Kafka commits one offset per partition: "everything below this is done". A partition's
messages are taken up in offset order, one at a time. Most finish there and then (their
handlers succeeded); a failure leaves a durable tail in flight (the store write, the DLQ
produce) while the next messages run, and those tails finish out of order. So a
partition's commit point is the lowest offset whose tail is still in flight, or, with
none in flight, one past the last message taken up. A message is finished when every
handler succeeded, or its failure record is durable in the store and (when the DLQ topic
is on) its DlqMessage was acknowledged by the broker. A crash before the commit
redelivers the unfinished messages and those above them: at-least-once.

The common case costs one attribute store per message (``PartitionOffsets.passed``);
only messages with a tail go into the in-flight queue.
"""

from __future__ import annotations

import collections

TopicPartitionKey = tuple[str, int]


class PartitionOffsets:
    """The offsets of one assignment of one partition.

    A revoked or re-assigned partition gets a new object: a late finish of a message of
    the old assignment lands on the old object, which nobody commits from any more.

    .. versionadded:: 0.1
    """

    __slots__ = ("committed", "done", "held", "position")

    def __init__(self) -> None:
        self.position: int | None = None  # one past the last message taken up
        self.held: collections.deque[int] = collections.deque()  # tails in flight, in order
        self.done: set[int] = set()  # held offsets finished out of order
        self.committed: int | None = None  # what was last handed out for commit

    def passed(self, offset: int) -> None:
        """The message at ``offset`` (the next one of the partition) is finished."""
        self.position = offset + 1

    def hold(self, offset: int) -> None:
        """The message at ``offset`` (the next one) has work in flight: no commit passes
        it until :meth:`release`."""
        self.held.append(offset)
        self.position = offset + 1

    def release(self, offset: int) -> None:
        """The work in flight of the message at ``offset`` is done (durable)."""
        held = self.held
        if held and held[0] == offset:
            held.popleft()
            done = self.done
            while held and held[0] in done:
                done.discard(held.popleft())
        else:
            self.done.add(offset)

    @property
    def next_offset(self) -> int | None:
        """The offset a commit may go up to (exclusive), if any message is finished."""
        return self.held[0] if self.held else self.position

    @property
    def unfinished(self) -> int:
        """How many messages taken up still have work in flight."""
        return len(self.held) - len(self.done)


class CommitTracker:
    """The :class:`PartitionOffsets` of the assigned partitions; not thread-safe (one
    event loop).

    .. versionadded:: 0.1
    """

    def __init__(self) -> None:
        self._partitions: dict[TopicPartitionKey, PartitionOffsets] = {}

    def reset(self, tp: TopicPartitionKey) -> PartitionOffsets:
        """Start ``tp`` afresh (a new assignment: offsets may go back to the committed
        one) and return its offsets."""
        offsets = self._partitions[tp] = PartitionOffsets()
        return offsets

    def get(self, tp: TopicPartitionKey) -> PartitionOffsets | None:
        """The offsets of ``tp`` while it is assigned."""
        return self._partitions.get(tp)

    def committable(self) -> dict[TopicPartitionKey, int]:
        """The offsets to commit now (one past each finished prefix), marking them handed
        out: each offset is returned once."""
        due = {}
        for tp, part in self._partitions.items():
            offset = part.next_offset
            if offset is not None and offset != part.committed:
                due[tp] = part.committed = offset
        return due

    def safe_offsets(self, tps: list[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """One past each finished prefix of ``tps``, whether handed out before or not."""
        return {
            tp: offset
            for tp in tps
            if (part := self._partitions.get(tp)) is not None
            and (offset := part.next_offset) is not None
        }

    def forget(self, tps: list[TopicPartitionKey]) -> None:
        """Drop the partitions (revoked): later finishes of their messages are ignored."""
        for tp in tps:
            self._partitions.pop(tp, None)
