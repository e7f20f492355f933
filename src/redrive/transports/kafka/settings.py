"""The ``[kafka]`` table of redrive.toml, read into typed values.

.. code-block:: toml

    [kafka]
    bootstrap_servers = "localhost:9092"
    group = "billing"
    topics = ["orders.created"]
    client = { "session.timeout.ms" = 10000 }   # any librdkafka setting

    [kafka.dlq]                                   # every {topic}.dlq topic
    partitions = 3
    replication = 1
    "retention.ms" = 604800000
    configs = { "cleanup.policy" = "delete" }

    [kafka.dlq.topics."orders.created"]           # one topic's DLQ, over the defaults
    partitions = 6

    [topics."orders.created".alerts]              # the DLQ topic's depth thresholds
    dlq_depth_warn = 5
    dlq_depth_critical = 20

The DLQ topic of a topic is ``topics.<topic>.dlq_topic`` of the config, else
``{topic}.dlq``. Its depth thresholds are the ``dlq_depth`` alert rule's (``[alerts.defaults]``
and ``[topics.<topic>.alerts]``), so ``redrive kafka depth --check`` and ``redrive monitor``
agree. Command-line options override the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from redrive.config import Settings
from redrive.exceptions import ConfigError

_KAFKA_KEYS = {"bootstrap_servers", "group", "topics", "client", "dlq", "transactional_id"}
_DLQ_KEYS = {"enabled", "partitions", "replication", "retention.ms", "configs", "topics"}
_TOPIC_KEYS = {"partitions", "replication", "retention.ms", "configs"}
_MOVED = {"warn": "dlq_depth_warn", "critical": "dlq_depth_critical"}


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class DlqTopicSpec:
    """How one DLQ topic is provisioned, and its depth thresholds."""

    name: str
    partitions: int = 1
    replication: int = 1
    configs: Mapping[str, str] = dataclasses.field(default_factory=dict)
    warn: int | None = None
    critical: int | None = None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class KafkaSettings:
    """What ``[kafka]`` says.

    .. versionadded:: 0.1
    """

    bootstrap_servers: str | None = None
    group: str | None = None
    topics: tuple[str, ...] = ()
    client: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    dlq_enabled: bool = True
    transactional_id: str | None = None
    dlq_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    dlq_topics: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    settings: Settings = dataclasses.field(default_factory=Settings)

    @classmethod
    def of(cls, settings: Settings) -> KafkaSettings:
        """Validate ``settings.sections["kafka"]``; a bad value is a ``ConfigError``."""
        data = settings.sections.get("kafka", {})
        p = _Reader(settings.source)
        table = p.table(data, "kafka", _KAFKA_KEYS)
        dlq = p.table(table.get("dlq", {}), "kafka.dlq", _DLQ_KEYS)
        topics_table = p.table(dlq.get("topics", {}), "kafka.dlq.topics", None)
        defaults = {k: v for k, v in dlq.items() if k not in ("topics", "enabled")}
        p.dlq_values(defaults, "kafka.dlq")
        per_topic = {}
        for name, value in topics_table.items():
            key = f"kafka.dlq.topics.{name}"
            for old, new in _MOVED.items():
                if isinstance(value, Mapping) and old in value:
                    raise ConfigError(
                        f"depth thresholds are alert rules now: set {new} in "
                        f'[topics."{name}".alerts]',
                        source=settings.source,
                        key=f"{key}.{old}",
                    )
            per_topic[name] = p.dlq_values(p.table(value, key, _TOPIC_KEYS), key)
        topics = table.get("topics", [])
        if isinstance(topics, str):
            topics = [topics]
        if not isinstance(topics, list) or not all(isinstance(t, str) and t for t in topics):
            raise p.fail("kafka.topics", "a list of topic names", topics)
        return cls(
            bootstrap_servers=p.optional_string(table, "bootstrap_servers"),
            group=p.optional_string(table, "group"),
            topics=tuple(topics),
            client=p.table(table.get("client", {}), "kafka.client", None),
            dlq_enabled=p.boolean(dlq.get("enabled", True), "kafka.dlq.enabled"),
            transactional_id=p.optional_string(table, "transactional_id"),
            dlq_defaults=defaults,
            dlq_topics=per_topic,
            settings=settings,
        )

    def dlq_topic(self, topic: str) -> str:
        """Where dead letters of ``topic`` go."""
        return self.settings.dlq_topic(topic)

    def dlq_spec(self, topic: str) -> DlqTopicSpec:
        """The provisioning of ``topic``'s DLQ topic: its own entry over the defaults."""
        merged = {**self.dlq_defaults, **self.dlq_topics.get(topic, {})}
        configs = {str(k): str(v) for k, v in (merged.get("configs") or {}).items()}
        if "retention.ms" in merged:
            configs["retention.ms"] = str(merged["retention.ms"])
        warn, critical = self.depth_thresholds(topic)
        return DlqTopicSpec(
            name=self.dlq_topic(topic),
            partitions=int(merged.get("partitions", 1)),
            replication=int(merged.get("replication", 1)),
            configs=configs,
            warn=warn,
            critical=critical,
        )

    def depth_thresholds(self, topic: str) -> tuple[int | None, int | None]:
        """``dlq_depth_warn`` and ``dlq_depth_critical`` of the ``dlq_depth`` alert rule
        for ``topic`` (``[topics.<topic>.alerts]`` over ``[alerts.defaults]``; ``false``
        or a disabled topic: none). ``redrive monitor`` validates them."""
        defaults = self.settings.sections.get("alerts", {}).get("defaults", {})
        own = self.settings.topics[topic].alerts if topic in self.settings.topics else {}
        rules = {**defaults, **own} if isinstance(defaults, Mapping) else dict(own)
        if rules.get("enabled") is False:
            return None, None
        return _threshold(rules.get("dlq_depth_warn")), _threshold(rules.get("dlq_depth_critical"))


def _threshold(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, expected: str, value: Any) -> ConfigError:
        return ConfigError(f"expected {expected}, got {value!r}", source=self.source, key=key)

    def table(self, value: Any, key: str, known: set[str] | None) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, "a table", value)
        if known is not None:
            unknown = sorted(set(value) - known)
            if unknown:
                raise self.fail(
                    f"{key}.{unknown[0]}", f"one of {', '.join(sorted(known))}", "an unknown key"
                )
        return value

    def optional_string(self, table: Mapping[str, Any], name: str) -> str | None:
        value = table.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(f"kafka.{name}", "a non-empty string", value)
        return value

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, "true or false", value)
        return value

    def dlq_values(self, values: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        for name in ("partitions", "replication"):
            if name in values:
                value = values[name]
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise self.fail(f"{key}.{name}", "an integer >= 1", value)
        if "retention.ms" in values:
            value = values["retention.ms"]
            if isinstance(value, bool) or not isinstance(value, int) or value < -1:
                raise self.fail(f"{key}.retention.ms", "milliseconds (-1: forever)", value)
        if "configs" in values:
            self.table(values["configs"], f"{key}.configs", None)
        return values
