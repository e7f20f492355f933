"""``redrive retry --republish``: dead letters published again to their original subjects.

Each copy carries the original body and headers, ``Redrive-Replay-Of: <record id>`` and a
fresh ``Nats-Msg-Id`` (the original id would be dropped as a duplicate inside the stream's
duplicate window). Every consumer of the subject sees the message again, not only the
handler that failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from nats.errors import NoRespondersError
from nats.js.errors import NoStreamResponseError

from redrive._ids import new_id
from redrive.exceptions import TransportError
from redrive.transports.nats.connection import connect
from redrive.transports.nats.dlq import ascii_value
from redrive.transports.nats.envelope import (
    CORRELATION_ID,
    MSG_ID,
    REPLAY_OF,
    TENANT_ID,
    body_of,
)
from redrive.transports.nats.options import NatsOptions

if TYPE_CHECKING:
    from redrive.config import Settings
    from redrive.models import DeadLetter

REPLAYED_BY = "Redrive-Replayed-By"


def replay_headers(record: DeadLetter, actor: str) -> dict[str, str]:
    """The original headers (but ``Nats-*``), the event's ids, and the replay's own."""
    headers = {k: v for k, v in record.event.headers.items() if not k.lower().startswith("nats-")}
    if record.event.correlation_id:
        headers.setdefault(CORRELATION_ID, record.event.correlation_id)
    if record.event.tenant_id:
        headers.setdefault(TENANT_ID, record.event.tenant_id)
    headers[REPLAY_OF] = record.id
    headers[REPLAYED_BY] = ascii_value(actor, 200)
    headers[MSG_ID] = f"redrive-replay:{record.id}:{new_id()}"
    return headers


async def republish(records: Sequence[DeadLetter], settings: Settings, *, actor: str) -> int:
    """Publish each record's message to its original subject, confirmed by the stream."""
    options = NatsOptions.from_settings(settings)
    nc = await connect(options.servers, name="redrive republish", reconnect=False)
    js = nc.jetstream()
    sent = 0
    try:
        for record in records:
            subject = str(record.origin.get("subject") or record.topic)
            body = body_of(record.payload, record.origin)
            try:
                await js.publish(subject, body, headers=replay_headers(record, actor), timeout=5)
            except (NoStreamResponseError, NoRespondersError) as exc:
                raise TransportError(
                    f"no stream captures {subject!r} any more: {sent} of {len(records)} "
                    "dead letters were republished"
                ) from exc
            except Exception as exc:
                raise TransportError(
                    f"publishing to {subject!r} failed ({exc or type(exc).__name__}): {sent} "
                    f"of {len(records)} dead letters were republished"
                ) from exc
            sent += 1
    finally:
        await nc.drain()
    return sent
