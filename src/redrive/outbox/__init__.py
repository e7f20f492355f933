"""The transactional outbox: "event written" becomes part of the application's transaction.

``Outbox(store, bus=... | publisher=...)``: ``add(conn, topic, payload, ...)`` inside the
application's transaction, ``dispatch()`` / ``run()`` to deliver, and the repository API
for dead events. See ``redrive.outbox.dispatcher`` and docs/outbox.md.
"""

from __future__ import annotations

from redrive.outbox.dispatcher import Outbox, backend_for
from redrive.outbox.model import DeadQuery, OutboxEvent, OutboxPage

__all__ = ["DeadQuery", "Outbox", "OutboxEvent", "OutboxPage", "backend_for"]
