"""DLQ stream depths (``redrive nats dlq``, ``consumer.stats``) and a Prometheus collector.

``NatsCollector(consumer)`` exports, at scrape time, the consumer's counters and the depth of
its DLQ stream as last read (``redrive_nats_dlq_messages{stream}``): a gauge alert rules can
fire on, alongside the store's own ``redrive_dead_letters``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from nats.js.errors import NotFoundError

from redrive.models import format_time
from redrive.transports.nats.stored import get_stored

if TYPE_CHECKING:
    from redrive.transports.nats.consumer import JetStreamConsumer


async def dlq_depths(js: Any, streams: Sequence[str] = ()) -> list[dict[str, Any]]:
    """[{stream, messages, bytes, oldest}] for ``streams`` (default: every ``*_DLQ``)."""
    if not streams:
        infos = [info for info in await js.streams_info() if info.config.name.endswith("_DLQ")]
    else:
        infos = []
        for name in streams:
            try:
                infos.append(await js.stream_info(name))
            except NotFoundError:
                infos.append(None)
    rows = []
    for name, info in zip(streams or [i.config.name for i in infos], infos, strict=True):
        if info is None:
            rows.append(
                {"stream": name, "messages": 0, "bytes": 0, "oldest": None, "missing": True}
            )
            continue
        state = info.state
        oldest = None
        if state.messages:
            first = await get_stored(
                js, info.config.name, state.first_seq, direct=bool(info.config.allow_direct)
            )
            oldest = format_time(first.time) if first is not None and first.time else None
        rows.append(
            {
                "stream": info.config.name,
                "messages": state.messages,
                "bytes": state.bytes,
                "oldest": oldest,
            }
        )
    return sorted(rows, key=lambda row: str(row["stream"]))


class NatsCollector:
    """Prometheus collector of one consumer's counters and DLQ depth (``pip install
    "redrive[metrics]"``); register it with ``registry.register(NatsCollector(consumer))``.

    .. versionadded:: 0.1
    """

    def __init__(self, consumer: JetStreamConsumer) -> None:
        self.consumer = consumer

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stats = self.consumer.stats
        o = self.consumer.options
        labels = [o.stream, o.durable]
        messages = CounterMetricFamily(
            "redrive_nats_messages",
            "Messages settled by the consumer, by outcome.",
            labels=["stream", "durable", "outcome"],
        )
        for outcome in ("acked", "retries", "scheduled", "dead", "store_errors", "crash_loops"):
            messages.add_metric([*labels, outcome], stats[outcome])
        in_flight = GaugeMetricFamily(
            "redrive_nats_in_flight", "Messages being handled now.", labels=["stream", "durable"]
        )
        in_flight.add_metric(labels, stats["in_flight"])
        depth = GaugeMetricFamily(
            "redrive_nats_dlq_messages",
            "Messages in the DLQ stream (as last read).",
            labels=["stream"],
        )
        if stats.get("dlq_depth") is not None:
            depth.add_metric([o.dlq.stream_for(o.stream)], stats["dlq_depth"])
        return [messages, in_flight, depth]
