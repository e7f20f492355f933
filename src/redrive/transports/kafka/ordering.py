"""``ordering="key"``: a key's later messages wait behind its earlier one's retry.

Without it, a message whose retry goes to the store scheduler lets the partition flow:
the key's next messages run before the retry (order is lost for that key). With it, once
a message of key K waits for a retry in the store, every later message of K (for that
handler) is *parked*: written to the store in arrival order as a ``scheduled`` record due
in a year, so its offset can be committed. When the head record resolves or dies, the next
parked record is made due at once; the scheduler runs it; and so on down the chain. Other
keys flow meanwhile.

The chain of each key lives in the store (``meta`` namespace ``kafka-order``) and is
changed with compare-and-set, so any process of the group (whose scheduler may run the
head record) can release it, and a restarted consumer picks the chains up again. An
operator who resolves or discards the head by hand releases the chain too: the next
message of that key finds the head settled and moves the chain on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from redrive.models import Attempt, DeadLetter, Status
from redrive.policy import LONGEST_DELAY
from redrive.stores.base import Change, Store

logger = logging.getLogger("redrive.kafka")

META = "kafka-order"
_SETTLED = (Status.RESOLVED, Status.DEAD, Status.DISCARDED)


class WaitingBehind(Exception):
    """The message waits for an earlier message of its key (``ordering="key"``)."""


def chain_key(group: str, topic: str, handler: str, key: str) -> str:
    """The meta key of one (group, topic, handler, key) chain."""
    return "\x1f".join((group, topic, handler, key))


class KeyOrder:
    """The chains of parked records, kept in the store.

    .. versionadded:: 0.1
    """

    def __init__(self, store: Store, group: str) -> None:
        self.store = store
        self.group = group
        self._known: set[str] = set()  # chains this process has seen: a fast filter

    async def load(self) -> None:
        """Read the chains of this group (after an assignment)."""
        chains = await asyncio.to_thread(self.store.meta_list, META)
        self._known = {k for k in chains if k.split("\x1f", 1)[0] == self.group}

    async def head(self, topic: str, handler: str, key: str | None) -> DeadLetter | None:
        """The record the message of ``key`` must wait behind, if any. A head settled by
        hand (resolved, discarded) moves the chain on first."""
        if key is None:
            return None
        name = chain_key(self.group, topic, handler, key)
        while name in self._known:
            chain = await asyncio.to_thread(self._get, name)
            if chain is None or chain[0].get("head") is None:
                self._known.discard(name)
                return None
            head = str(chain[0]["head"])
            record = await asyncio.to_thread(self.store.get, head)
            if record is not None and record.status not in _SETTLED:
                return record
            await self.release(name, head)
        return None

    async def block(self, record: DeadLetter) -> None:
        """``record`` (of a keyed message) waits for a retry: start its key's chain."""
        key = record.event.key
        if key is None:
            return
        name = chain_key(self.group, record.topic, record.handler, key)
        self._known.add(name)
        await asyncio.to_thread(
            self._update, name, lambda c: c or {"head": record.id, "parked": []}
        )

    async def park(self, record: DeadLetter, head: str) -> DeadLetter:
        """Append ``record`` to the chain behind ``head``; return it as it must be stored."""
        assert record.event.key is not None
        name = chain_key(self.group, record.topic, record.handler, record.event.key)
        now = record.created_at
        parked = record.replace(
            status=Status.SCHEDULED,
            attempts=0,
            error_type="redrive.transports.kafka.ordering.WaitingBehind",
            error_message=f"waiting behind {head} (ordering='key')",
            traceback="",
            history=(Attempt(kind="parked", at=now, detail={"behind": head}),),
            next_attempt_at=now + timedelta(seconds=LONGEST_DELAY),
            dead_at=None,
        )

        def append(chain: dict[str, Any] | None) -> dict[str, Any]:
            chain = chain or {"head": head, "parked": []}
            return {"head": chain["head"], "parked": [*chain["parked"], parked.id]}

        # The chain first: a crash before the record is written leaves an id that the
        # release skips; the other order could leave a record parked for a year.
        await asyncio.to_thread(self._update, name, append)
        return parked

    def settled(self, record: DeadLetter) -> asyncio.Task[None] | None:
        """A record resolved or died: release its key's next message (in the background)."""
        key = record.event.key
        group = record.origin.get("group")
        if key is None or group != self.group or record.origin.get("transport") != "kafka":
            return None
        name = chain_key(self.group, record.topic, record.handler, key)
        return asyncio.get_running_loop().create_task(self.release(name, record.id))

    async def release(self, name: str, head: str) -> None:
        """If ``head`` heads chain ``name``, make the next parked record due now."""
        while True:
            current = await asyncio.to_thread(self.store.meta_get, META, name)
            if current is None or current[0].get("head") != head:
                return
            chain, version = current
            parked = list(chain.get("parked") or [])
            if not parked:
                if await asyncio.to_thread(self._delete_if, name, version):
                    self._known.discard(name)
                return
            following = parked.pop(0)
            value = {"head": following, "parked": parked}
            if not await asyncio.to_thread(self.store.meta_put, META, name, value, version=version):
                continue  # changed meanwhile: look again
            found = await asyncio.to_thread(self._make_due, following)
            if found:
                return
            head = following  # never written (a crash after the chain changed): skip it

    def _make_due(self, record_id: str) -> bool:
        from redrive.models import utcnow

        now = utcnow()
        change = Change(
            to=Status.SCHEDULED,
            from_statuses=(Status.SCHEDULED,),
            now=now,
            next_attempt_at=now,
            entry=Attempt(kind="released", at=now),
        )
        return bool(self.store.transition([record_id], change))

    def _get(self, name: str) -> list[Mapping[str, Any]] | None:
        current = self.store.meta_get(META, name)
        return None if current is None else [current[0]]

    def _update(self, name: str, change: Any) -> None:
        while True:
            current = self.store.meta_get(META, name)
            value, version = (None, 0) if current is None else current
            if self.store.meta_put(META, name, change(value), version=version):
                return

    def _delete_if(self, name: str, version: int) -> bool:
        # No delete-with-version in the store: an empty chain is deleted only if it did
        # not change since it was read (put it back with a new version first).
        if not self.store.meta_put(META, name, {"head": None, "parked": []}, version=version):
            return False
        return self.store.meta_delete(META, name)
