"""NATS JetStream transport: pull consumers whose failures are never lost.

``JetStreamConsumer`` runs your handlers on a durable pull consumer. A message is acked only
once every handler succeeded or its failure record is durable in the store; short retries go
back to the broker (``nak`` with the policy's delay), long ones and partial failures to the
store's scheduler; dead letters go to the store and to a ``<STREAM>_DLQ`` stream before the
source message is terminated. Crash loops are caught from the MAX_DELIVERIES advisory.

Needs nats-py: ``pip install "redrive[nats]"``.
"""

from __future__ import annotations

try:
    import nats as _nats  # noqa: F401 - only to fail early with the extra's name
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError('the NATS transport needs nats-py: pip install "redrive[nats]"') from exc

from redrive.transports.nats.consumer import JetStreamConsumer
from redrive.transports.nats.envelope import UndecodableMessage
from redrive.transports.nats.options import AdvisoryOptions, DlqOptions, NatsOptions

__all__ = [
    "AdvisoryOptions",
    "DlqOptions",
    "JetStreamConsumer",
    "NatsOptions",
    "UndecodableMessage",
]
