"""The ``[alerts]`` table and each topic's ``[topics.NAME.alerts]``, validated.

::

    [alerts]
    interval = "60s"          # evaluation period
    cooldown = "15m"          # no repeat of an unchanged alert within this
    public_url = "https://redrive.example.com"   # adds a console link to alerts

    [alerts.defaults]         # every topic, unless it says otherwise
    warn_count = 1
    critical_count = 100
    max_age = "24h"
    rate = false              # new dead letters per rate_window; off by default
    rate_window = "1h"
    expiring = "48h"
    stalled = "10m"           # scheduled records overdue this long with no live worker

    [alerts.sinks.ops]
    type = "webhook"          # log | webhook | slack | email
    url_env = "OPS_WEBHOOK_URL"
    secret_env = "OPS_WEBHOOK_SECRET"

    [topics.rfq.alerts]
    warn_count = 10
    critical_count = 50
    dlq_depth_warn = 10       # records held by the Kafka DLQ topic rfq.dlq; off by default
    dlq_depth_critical = 50   # (needs [kafka] bootstrap_servers and redrive[kafka])

Secrets are given as ``*_env`` (the name of an environment variable) or inline; errors
name the key, never the value of a secret.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from redrive.config import Settings, parse_duration
from redrive.exceptions import ConfigError
from redrive.ops.alerts.email import EmailSink
from redrive.ops.alerts.rules import TopicRules
from redrive.ops.alerts.sinks import LogSink, Sink, SlackSink, WebhookSink

_TOP_KEYS = {"interval", "cooldown", "public_url", "top_groups", "lock_ttl", "defaults", "sinks"}
_RULE_KEYS = {
    "warn_count",
    "critical_count",
    "max_age",
    "rate",
    "rate_window",
    "expiring",
    "stalled",
    "dlq_depth_warn",
    "dlq_depth_critical",
    "enabled",
}
_COUNTS = ("warn_count", "critical_count", "rate", "dlq_depth_warn", "dlq_depth_critical")
_SEVERITIES = ("warning", "critical")
_COMMON = {"type", "min_severity"}
_HTTP = _COMMON | {"url", "url_env", "timeout", "retries", "backoff"}
_SINK_KEYS = {
    "log": _COMMON,
    "webhook": _HTTP | {"secret", "secret_env"},
    "slack": _HTTP,
    "email": _COMMON
    | {
        "host",
        "port",
        "starttls",
        "username",
        "password",
        "password_env",
        "from",
        "to",
        "timeout",
        "ca_file",
    },
}


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AlertsConfig:
    """What the monitor runs with.

    .. versionadded:: 0.1
    """

    interval: float = 60.0
    cooldown: float = 900.0
    public_url: str | None = None
    top_groups: int = 3
    lock_ttl: float | None = None
    defaults: TopicRules = dataclasses.field(default_factory=TopicRules)
    topics: Mapping[str, TopicRules] = dataclasses.field(default_factory=dict)
    retention: Mapping[str, timedelta] = dataclasses.field(default_factory=dict)
    sinks: Mapping[str, Sink] = dataclasses.field(default_factory=dict)
    kafka: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    dlq_topics: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def rules_for(self, topic: str) -> TopicRules:
        """The rules of ``topic``: its own table over the defaults."""
        return self.topics.get(topic, self.defaults)

    def dlq_topic(self, topic: str) -> str:
        """The Kafka DLQ topic of ``topic`` (``topics.NAME.dlq_topic``, else ``{topic}.dlq``)."""
        return self.dlq_topics.get(topic) or f"{topic}.dlq"


def load(settings: Settings, environ: Mapping[str, str] | None = None) -> AlertsConfig:
    """Validate ``settings``' alert tables into an :class:`AlertsConfig`."""
    p = _Reader(settings.source, environ or {})
    data = p.table(settings.sections.get("alerts", {}), "alerts")
    p.known(data, _TOP_KEYS, "alerts")
    defaults = p.rules(data.get("defaults", {}), "alerts.defaults", TopicRules())
    topics = {
        name: p.rules(topic.alerts, f"topics.{name}.alerts", defaults)
        for name, topic in settings.topics.items()
        if topic.alerts
    }
    depth_rules = [
        (f"topics.{name}.alerts" if name else "alerts.defaults", rules)
        for name, rules in [("", defaults), *topics.items()]
        if rules.watches_dlq_depth
    ]
    kafka = p.kafka(settings, depth_rules[0][0]) if depth_rules else {}
    sinks_data = p.table(data.get("sinks", {}), "alerts.sinks")
    sinks = {name: p.sink(name, value) for name, value in sinks_data.items()}
    interval = p.seconds(data.get("interval", 60), "alerts.interval", positive=True)
    return AlertsConfig(
        interval=interval,
        cooldown=p.seconds(data.get("cooldown", 900), "alerts.cooldown"),
        public_url=p.string(data["public_url"], "alerts.public_url")
        if "public_url" in data
        else None,
        top_groups=p.integer(data.get("top_groups", 3), "alerts.top_groups", minimum=0),
        lock_ttl=p.seconds(data["lock_ttl"], "alerts.lock_ttl", positive=True)
        if "lock_ttl" in data
        else None,
        defaults=defaults,
        topics=topics,
        retention={n: t.retention for n, t in settings.topics.items() if t.retention},
        sinks=sinks or {"log": LogSink("log")},
        kafka=kafka,
        dlq_topics={n: t.dlq_topic for n, t in settings.topics.items() if t.dlq_topic},
    )


class _Reader:
    """Typed reads; each failure is a ConfigError naming the file and the key."""

    def __init__(self, source: str, environ: Mapping[str, str]) -> None:
        self.source = source
        self.environ = environ

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, source=self.source, key=key)

    def table(self, value: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a table, got {value!r}")
        return value

    def known(self, data: Mapping[str, Any], allowed: set[str], key: str) -> None:
        for name in sorted(set(data) - allowed):
            raise self.fail(f"{key}.{name}", f"unknown key; expected one of {_list(allowed)}")

    def string(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected a non-empty string, got {value!r}")
        return value

    def integer(self, value: Any, key: str, *, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"expected an integer >= {minimum}, got {value!r}")
        return value

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {value!r}")
        return value

    def seconds(self, value: Any, key: str, *, positive: bool = False) -> float:
        try:
            seconds = parse_duration(value).total_seconds()
        except (TypeError, ValueError):
            raise self.fail(
                key, f"expected a duration such as 30s, 15m, 2h, got {value!r}"
            ) from None
        if positive and seconds <= 0:
            raise self.fail(key, f"expected a duration above zero, got {value!r}")
        return seconds

    def rules(self, value: Any, key: str, base: TopicRules) -> TopicRules:
        data = self.table(value, key)
        self.known(data, _RULE_KEYS, key)
        changes: dict[str, Any] = {}
        for name, raw in data.items():
            where = f"{key}.{name}"
            if name == "enabled":
                changes[name] = self.boolean(raw, where)
            elif raw is False:  # false turns a rule off
                if name == "rate_window":
                    raise self.fail(where, "expected a duration, got false")
                changes[name] = None
            elif name in _COUNTS:
                changes[name] = self.integer(raw, where, minimum=1)
            else:
                changes[name] = timedelta(seconds=self.seconds(raw, where, positive=True))
        rules = base.replace(**changes)
        for prefix in ("", "dlq_depth_"):
            low, high = ("warn", "critical") if prefix else ("warn_count", "critical_count")
            warn, critical = getattr(rules, prefix + low), getattr(rules, prefix + high)
            if warn is not None and critical is not None and critical < warn:
                raise self.fail(
                    f"{key}.{prefix}{high}",
                    f"expected at least {prefix}{low} ({warn}), got {critical}",
                )
        return rules

    def kafka(self, settings: Settings, key: str) -> dict[str, Any]:
        """The librdkafka settings the ``dlq_depth`` rules read the watermarks with (from
        ``[kafka]``); the Kafka code is imported only here, once such a rule is set."""
        try:
            from redrive.transports.kafka.settings import KafkaSettings
        except ImportError as exc:
            raise self.fail(key, f"the dlq_depth rules read Kafka: {exc}") from None
        kafka = KafkaSettings.of(settings)
        if not kafka.bootstrap_servers:
            raise self.fail(
                "kafka.bootstrap_servers", f"missing; {key} has a dlq_depth rule, which reads Kafka"
            )
        return {**kafka.client, "bootstrap.servers": kafka.bootstrap_servers}

    def secret(self, data: Mapping[str, Any], name: str, key: str, *, required: bool) -> str | None:
        if name in data:
            return self.string(data[name], f"{key}.{name}")
        if f"{name}_env" in data:
            variable = self.string(data[f"{name}_env"], f"{key}.{name}_env")
            value = self.environ.get(variable)
            if not value:
                raise self.fail(f"{key}.{name}_env", f"environment variable {variable} is not set")
            return value
        if required:
            raise self.fail(f"{key}.{name}", f"missing; set {name} or {name}_env")
        return None

    def sink(self, name: str, value: Any) -> Sink:
        key = f"alerts.sinks.{name}"
        data = self.table(value, key)
        kind = data.get("type", name if name in _SINK_KEYS else None)
        if kind not in _SINK_KEYS:
            raise self.fail(f"{key}.type", f"expected one of {_list(_SINK_KEYS)}, got {kind!r}")
        self.known(data, _SINK_KEYS[kind], key)
        severity = data.get("min_severity", "warning")
        if severity not in _SEVERITIES:
            raise self.fail(
                f"{key}.min_severity", f"expected warning or critical, got {severity!r}"
            )
        if kind == "log":
            return LogSink(name, min_severity=severity)
        if kind == "email":
            return self.email(name, data, key, severity)
        http = {
            "timeout": self.seconds(data.get("timeout", 5), f"{key}.timeout", positive=True),
            "retries": self.integer(data.get("retries", 3), f"{key}.retries", minimum=0),
            "backoff": self.seconds(data.get("backoff", 1), f"{key}.backoff"),
            "min_severity": severity,
        }
        url = self.secret(data, "url", key, required=True) or ""
        if not url.startswith(("http://", "https://")):
            raise self.fail(f"{key}.url", "expected an http:// or https:// URL")
        if kind == "slack":
            return SlackSink(name, url, **http)
        return WebhookSink(
            name, url, secret=self.secret(data, "secret", key, required=False), **http
        )

    def email(self, name: str, data: Mapping[str, Any], key: str, severity: str) -> EmailSink:
        starttls = self.boolean(data.get("starttls", False), f"{key}.starttls")
        recipients = data.get("to")
        if isinstance(recipients, str):
            recipients = [recipients]
        if not isinstance(recipients, list) or not recipients:
            raise self.fail(
                f"{key}.to", f"expected an address or a list of them, got {recipients!r}"
            )
        return EmailSink(
            name,
            host=self.string(data.get("host"), f"{key}.host"),
            port=self.integer(data.get("port", 587 if starttls else 25), f"{key}.port", minimum=1),
            sender=self.string(data.get("from"), f"{key}.from"),
            to=[self.string(r, f"{key}.to") for r in recipients],
            username=self.string(data["username"], f"{key}.username")
            if "username" in data
            else None,
            password=self.secret(data, "password", key, required=False),
            starttls=starttls,
            ca_file=self.string(data["ca_file"], f"{key}.ca_file") if "ca_file" in data else None,
            timeout=self.seconds(data.get("timeout", 10), f"{key}.timeout", positive=True),
            min_severity=severity,
        )


def _list(names: Any) -> str:
    return ", ".join(sorted(names))
