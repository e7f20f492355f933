"""The ``[nats]`` table of redrive.toml as typed values; CLI options and code override it.

```toml
[nats]
servers = ["nats://127.0.0.1:4222"]
stream = "ORDERS"
durable = "billing"
ack_wait = "30s"              # in_progress() heartbeats keep long handlers alive
broker_retry_max = "30s"      # retries up to this delay are naks; longer ones go to the store
[nats.dlq]
stream = "ORDERS_DLQ"         # default <STREAM>_DLQ, subjects dlq.<original subject>
max_age = "30d"
max_msgs = 100000
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from redrive.config import Settings, parse_duration
from redrive.exceptions import ConfigError

ADVISORY_SUBJECTS = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"
"""What the advisory stream captures: a message that reached a consumer's max_deliver."""

MAX_DELIVER_SLACK = 3
"""Deliveries allowed beyond the policy's attempts by default: room for store outages
(naked with a delay) before the crash-loop advisory fires."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class DlqOptions:
    """The DLQ stream dead letters are copied to.

    :param stream: its name; default ``<STREAM>_DLQ``.
    :param subject_prefix: a dead letter of subject ``s`` goes to ``<prefix>.s``. It must not
        fall under the source stream's subjects (the server refuses overlapping streams).
    """

    enabled: bool = True
    stream: str | None = None
    subject_prefix: str = "dlq"
    max_age: float = 30 * 86400.0
    max_msgs: int = 100_000
    replicas: int = 1

    def stream_for(self, source: str) -> str:
        """The DLQ stream's name for the source stream ``source``."""
        return self.stream or f"{source}_DLQ"

    def subject_for(self, subject: str) -> str:
        """Where a dead letter of ``subject`` is published."""
        return f"{self.subject_prefix}.{subject}"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AdvisoryOptions:
    """The stream that keeps MAX_DELIVERIES advisories until a consumer reads them."""

    enabled: bool = True
    stream: str = "REDRIVE_ADVISORIES"
    max_age: float = 7 * 86400.0
    replicas: int = 1

    def durable_for(self, stream: str, durable: str) -> str:
        """The durable consumer reading the advisories of one (stream, consumer)."""
        return f"redrive_{stream}_{durable}".replace(".", "_")

    def subject_for(self, stream: str, durable: str) -> str:
        """The advisory subject of one (stream, consumer)."""
        return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{durable}"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class NatsOptions:
    """Everything the NATS transport reads from configuration.

    :param servers: NATS URLs.
    :param stream: the source stream; its messages' subjects are the handlers' topics.
    :param durable: the durable pull consumer (shared by every process of the service).
    :param filter_subject: only these subjects of the stream (default: all of them).
    :param ack_wait: seconds before an unacked delivery is redelivered; handlers that run
        longer are kept alive with ``in_progress()`` every third of it.
    :param max_deliver: the consumer's delivery limit; default the largest policy's
        attempts plus ``MAX_DELIVER_SLACK``. Always above the attempts: reaching it means
        the process died every time (a crash loop), caught from the advisory.
    :param broker_retry_max: retry delays up to this go back to the broker as
        ``nak(delay)``; longer ones (and failures of one of several handlers) become
        store records run by the scheduler, and the message is acked.
    :param store_retry_delay: the nak delay when the store cannot record a failure.
    :param batch: messages per fetch.
    :param concurrency: messages handled at once.
    :param max_ack_pending: the consumer's limit of unacked messages.

    .. versionadded:: 0.1
    """

    servers: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    stream: str = ""
    durable: str = ""
    filter_subject: str | None = None
    ack_wait: float = 30.0
    max_deliver: int | None = None
    broker_retry_max: float = 30.0
    store_retry_delay: float = 5.0
    batch: int = 100
    concurrency: int = 200
    max_ack_pending: int = 1000
    dlq: DlqOptions = dataclasses.field(default_factory=DlqOptions)
    advisories: AdvisoryOptions = dataclasses.field(default_factory=AdvisoryOptions)

    def replace(self, **changes: Any) -> NatsOptions:
        """A copy with ``changes`` applied; ``None`` values are ignored (unset options)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def deliver_limit(self, max_attempts: int) -> int:
        """``max_deliver`` for handlers allowing ``max_attempts``: always above it."""
        if self.max_deliver is not None:
            return self.max_deliver
        return max_attempts + MAX_DELIVER_SLACK

    @classmethod
    def from_settings(cls, settings: Settings | None, **overrides: Any) -> NatsOptions:
        """The ``[nats]`` table of ``settings``, then ``overrides`` (None means unset)."""
        data = (settings.sections.get("nats") if settings else None) or {}
        source = settings.source if settings else ""
        return parse(data, source=source).replace(**overrides)


_KEYS = {
    "servers",
    "stream",
    "durable",
    "filter_subject",
    "ack_wait",
    "max_deliver",
    "broker_retry_max",
    "store_retry_delay",
    "batch",
    "concurrency",
    "max_ack_pending",
    "dlq",
    "advisories",
}
_DLQ_KEYS = {"enabled", "stream", "subject_prefix", "max_age", "max_msgs", "replicas"}
_ADVISORY_KEYS = {"enabled", "stream", "max_age", "replicas"}
_SECONDS = {"ack_wait", "broker_retry_max", "store_retry_delay", "max_age"}
_COUNTS = {
    "max_deliver": 1,
    "batch": 1,
    "concurrency": 1,
    "max_ack_pending": 1,
    "max_msgs": -1,
    "replicas": 1,
}


def parse(data: Mapping[str, Any], *, source: str = "") -> NatsOptions:
    """Validate the ``[nats]`` table; errors name the file and the key."""
    reader = _Reader(source)
    top = reader.fields(data, "nats", _KEYS - {"dlq", "advisories"}, _KEYS)
    if "servers" in top:
        servers = top["servers"]
        top["servers"] = (servers,) if isinstance(servers, str) else tuple(servers)
    dlq = reader.fields(data.get("dlq", {}), "nats.dlq", _DLQ_KEYS, _DLQ_KEYS)
    advisories = reader.fields(
        data.get("advisories", {}), "nats.advisories", _ADVISORY_KEYS, _ADVISORY_KEYS
    )
    return NatsOptions(**top, dlq=DlqOptions(**dlq), advisories=AdvisoryOptions(**advisories))


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, expected: str, value: Any) -> ConfigError:
        return ConfigError(f"expected {expected}, got {value!r}", source=self.source, key=key)

    def fields(self, value: Any, key: str, wanted: set[str], allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, "a table", value)
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.fail(
                f"{key}.{unknown[0]}", f"one of {', '.join(sorted(allowed))}", "an unknown key"
            )
        return {
            name: self.value(name, value[name], f"{key}.{name}") for name in wanted if name in value
        }

    def value(self, name: str, value: Any, key: str) -> Any:
        if name in _SECONDS:
            try:
                return parse_duration(value).total_seconds()
            except (TypeError, ValueError, OverflowError):
                raise self.fail(key, "a duration such as 30s, 5m or 30d", value) from None
        if name in _COUNTS:
            minimum = _COUNTS[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise self.fail(key, f"an integer >= {minimum}", value)
            return value
        if name == "enabled":
            if not isinstance(value, bool):
                raise self.fail(key, "true or false", value)
            return value
        if name == "servers":
            ok = isinstance(value, str) or (
                isinstance(value, list) and value and all(isinstance(v, str) for v in value)
            )
            if not ok:
                raise self.fail(key, "a URL or a list of URLs", value)
            return value
        if not isinstance(value, str) or not value:
            raise self.fail(key, "a non-empty string", value)
        return value
