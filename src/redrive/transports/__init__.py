"""Transports: sources that consume events from a broker and hand them to the core.

Each broker has one subpackage with the same inner shape (``redrive.transports.nats``,
``redrive.transports.kafka``), loaded only when used, so the core never imports a broker
client. A transport acks or commits a message only once every handler succeeded or its
failure record is durable in the store, and copies dead letters to the broker's own DLQ.

``republish`` sends stored dead letters back to the broker they came from (``redrive retry
--republish``): each record's ``origin["transport"]`` names its transport.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from redrive.exceptions import InvalidInput

if TYPE_CHECKING:
    from redrive.config import Settings
    from redrive.models import DeadLetter

REPUBLISHERS: dict[str, str] = {
    "nats": "redrive.transports.nats.republish",
    "kafka": "redrive.transports.kafka.republish",
}
"""Transport name (``origin["transport"]``) -> module with ``async def republish``."""


async def republish(records: Sequence[DeadLetter], settings: Settings, *, actor: str) -> int:
    """Publish each record's original message again to where it came from; return how many.

    Records are grouped by ``origin["transport"]``; a record with no transport origin (one
    from an ``EventBus`` or the outbox) cannot be republished and fails the whole call
    before anything is sent (``InvalidInput``).
    """
    groups: dict[str, list[DeadLetter]] = {}
    for record in records:
        name = record.origin.get("transport") if record.origin else None
        if not isinstance(name, str) or name not in REPUBLISHERS:
            what = f"transport {name!r}" if name else "no transport origin"
            raise InvalidInput(
                f"dead letter {record.id} has {what}: only messages consumed from "
                f"{' or '.join(sorted(REPUBLISHERS))} can be republished (use plain retry)"
            )
        groups.setdefault(name, []).append(record)
    sent = 0
    for name, batch in groups.items():
        module = importlib.import_module(REPUBLISHERS[name])
        sent += int(await module.republish(batch, settings, actor=actor))
    return sent
