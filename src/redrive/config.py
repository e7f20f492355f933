"""Settings: typed values built once at the edge from a config file and the environment.

The file is ``redrive.toml`` (or ``.yaml``/``.yml``), named by ``--config`` or
``REDRIVE_CONFIG``; ``REDRIVE_*`` variables override it. Library code never reads
``os.environ``: the CLI, ``redrive worker`` and the app pass ``environ`` in.

A bad value is reported with the file, the key and what was expected::

    redrive.toml: topics.orders.policy.max_attempts: expected an integer >= 1, got 'five'
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from redrive.exceptions import ConfigError, PolicyError
from redrive.policy import DEFAULT_DEAD_ON, RetryPolicy
from redrive.redact import Redactor

DEFAULT_STORE_URL = "sqlite:///./redrive.db"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_POLICY_KEYS = {
    "max_attempts",
    "initial_delay",
    "multiplier",
    "max_delay",
    "jitter",
    "retry_on",
    "dead_on",
}
_FIELD_ORDER = (
    "max_attempts",
    "initial_delay",
    "multiplier",
    "max_delay",
    "jitter",
    "retry_on",
    "dead_on",
)
_TOPIC_KEYS = {"policy", "retention", "dlq_topic", "alerts"}
_TOP_KEYS = {
    "store_url",
    "store",
    "policy",
    "topics",
    "handlers",
    "max_replays",
    "service",
    "version",
    "redact",
}
SECTIONS = {"api", "alerts", "nats", "kafka"}
"""Top-level tables that a feature reads and validates itself (``Settings.sections``):
the REST API's ``[api]``, the alert monitor's ``[alerts]`` and the transports' ``[nats]``
and ``[kafka]``. A feature that adds a table adds its name here."""
_STORE_KEYS = {"url"}
MAX_INTEGER = 2**31 - 1
"""The largest count a config value may hold (every store keeps it in an integer column)."""
_ENV_POLICY = {
    "REDRIVE_MAX_ATTEMPTS": "max_attempts",
    "REDRIVE_INITIAL_DELAY": "initial_delay",
    "REDRIVE_MULTIPLIER": "multiplier",
    "REDRIVE_MAX_DELAY": "max_delay",
    "REDRIVE_JITTER": "jitter",
}


def parse_duration(text: str | float | int) -> timedelta:
    """``"30s"``, ``"15m"``, ``"2h"``, ``"7d"``, ``"1w"``, ``"250ms"`` or plain seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=float(text))
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"expected a duration such as 30s, 15m, 2h or 7d, got {text!r}")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TopicSettings:
    """What the config says about one topic."""

    policy: RetryPolicy | None = None
    retention: timedelta | None = None
    dlq_topic: str | None = None
    alerts: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    policy_fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The policy fields the config sets for this topic (the others come from below)."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """Everything redrive reads from configuration.

    ``sections`` keeps the other top-level tables (``api``, ``alerts``, ``redact``, ...)
    for the features that own them to validate.

    .. versionadded:: 0.1
    """

    store_url: str = DEFAULT_STORE_URL
    policy: RetryPolicy | None = None
    topics: Mapping[str, TopicSettings] = dataclasses.field(default_factory=dict)
    handlers: Mapping[str, RetryPolicy] = dataclasses.field(default_factory=dict)
    max_replays: int = 5
    redact: tuple[str, ...] = ()
    service: str | None = None
    version: str | None = None
    sections: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    source: str = ""
    policy_fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The fields ``[policy]`` sets; ``policy`` alone (set in code) counts as all of them."""
    handler_fields: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    @classmethod
    def load(
        cls, path: str | Path | None = None, *, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Read ``path`` (or ``REDRIVE_CONFIG``, or ``./redrive.toml`` if present) and apply
        ``REDRIVE_*`` overrides from ``environ``."""
        environ = environ or {}
        path = path or environ.get("REDRIVE_CONFIG")
        if path is None and Path("redrive.toml").is_file():
            path = "redrive.toml"
        data = read_file(Path(path)) if path else {}
        return from_mapping(data, source=str(path or ""), environ=environ)

    def policy_for(
        self,
        topic: str,
        handler: str,
        code: RetryPolicy | None = None,
        *,
        fallback: RetryPolicy | None = None,
    ) -> RetryPolicy:
        """The policy a handler runs under, merged field by field, most specific first: the
        config's entry for the handler, the handler's policy in code, the config's entry for
        the topic, the config's default ``[policy]``, the code's default (``fallback``), the
        built-in default. A config table sets only the fields it names; a policy in code
        sets all of them.

        So operators can override any handler from the config without a deploy, and a
        developer's handler-specific policy beats a topic-wide or default one.
        """
        merged = RetryPolicy()
        for _, layer in reversed(self._policy_layers(topic, handler, code, fallback)):
            if isinstance(layer, RetryPolicy):
                merged = layer
            elif layer:
                try:
                    merged = merged.replace(**layer)
                except PolicyError as exc:
                    raise ConfigError(str(exc), source=self.source, key="policy") from exc
        return merged

    def policy_sources(self, topic: str, handler: str = "") -> dict[str, str]:
        """Where each policy field of ``policy_for(topic, handler)`` comes from, as the
        config sees it: ``handler config``, ``topic config``, ``default config`` or
        ``built-in`` (policies set in code are not visible here)."""
        sources = dict.fromkeys(sorted(_POLICY_KEYS), "built-in")
        for name, layer in reversed(self._policy_layers(topic, handler, None, None)):
            fields = _POLICY_KEYS if isinstance(layer, RetryPolicy) else set(layer)
            sources.update(dict.fromkeys(fields, name))
        return dict(sorted(sources.items(), key=lambda item: _FIELD_ORDER.index(item[0])))

    def _policy_layers(
        self, topic: str, handler: str, code: RetryPolicy | None, fallback: RetryPolicy | None
    ) -> list[tuple[str, RetryPolicy | Mapping[str, Any]]]:
        """Most specific first; a mapping sets the fields it has, a policy sets them all."""
        topic_settings = self.topics.get(topic, TopicSettings())
        layers: list[tuple[str, RetryPolicy | Mapping[str, Any] | None]] = [
            ("handler config", self.handler_fields.get(handler) or self.handlers.get(handler)),
            ("code", code),
            ("topic config", topic_settings.policy_fields or topic_settings.policy),
            ("default config", self.policy_fields or self.policy),
            ("code default", fallback),
        ]
        return [(name, layer) for name, layer in layers if layer is not None]

    def dlq_topic(self, topic: str) -> str:
        """Where a transport publishes dead letters of ``topic`` (default ``{topic}.dlq``)."""
        configured = self.topics.get(topic, TopicSettings()).dlq_topic
        return configured or f"{topic}.dlq"

    def redactor(self) -> Redactor:
        """The masker of the ``redact`` patterns (a no-op without them)."""
        return Redactor(self.redact)

    def retention(self, topic: str) -> timedelta | None:
        """How long dead letters of ``topic`` are kept, if the config says."""
        return self.topics.get(topic, TopicSettings()).retention


def read_file(path: Path) -> dict[str, Any]:
    """Parse a TOML or YAML config file into a mapping, with a clear error if it cannot."""
    source = str(path)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the config file ({exc.strerror})", source=source) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x}); save it as UTF-8",
            source=source,
        ) from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:  # the parsers' own messages name the line
        kind = "YAML" if path.suffix in (".yaml", ".yml") else "TOML"
        raise ConfigError(f"not valid {kind}: {exc}", source=source) from exc
    if not isinstance(data, dict):
        raise ConfigError("expected a table of settings at the top level", source=source)
    return data


def from_mapping(
    data: Mapping[str, Any], *, source: str = "", environ: Mapping[str, str] | None = None
) -> Settings:
    """Validate a parsed config (and environment overrides) into ``Settings``."""
    p = _Parser(source)
    environ = environ or {}
    store = data.get("store", {})
    store_url = data.get("store_url") or (store.get("url") if isinstance(store, dict) else None)
    store_url = environ.get("REDRIVE_STORE_URL") or store_url or DEFAULT_STORE_URL
    policy_data = dict(p.table(data.get("policy", {}), "policy"))
    for variable, key in _ENV_POLICY.items():
        if variable in environ:
            policy_data[key] = environ[variable]
    max_replays = environ.get("REDRIVE_MAX_REPLAYS", data.get("max_replays", 5))
    p.known(data, _TOP_KEYS | SECTIONS, "")
    if isinstance(store, Mapping):
        p.known(store, _STORE_KEYS, "store")
    for name in SECTIONS & set(data):
        p.table(data[name], name)
    return Settings(
        store_url=p.string(store_url, "store_url"),
        policy=p.policy(policy_data, "policy") if policy_data else None,
        policy_fields=p.policy_fields(policy_data, "policy") if policy_data else {},
        handler_fields={
            name: p.policy_fields(
                p.table(value, f"handlers.{name}").get("policy", {}), f"handlers.{name}.policy"
            )
            for name, value in p.table(data.get("handlers", {}), "handlers").items()
        },
        topics={
            name: p.topic(value, f"topics.{name}")
            for name, value in p.table(data.get("topics", {}), "topics").items()
        },
        handlers={
            name: p.handler(value, f"handlers.{name}")
            for name, value in p.table(data.get("handlers", {}), "handlers").items()
        },
        max_replays=p.integer(max_replays, "max_replays", minimum=0),
        redact=p.patterns(data.get("redact", []), "redact"),
        service=environ.get("REDRIVE_SERVICE") or data.get("service"),
        version=environ.get("REDRIVE_VERSION") or data.get("version"),
        sections={key: value for key, value in data.items() if key in SECTIONS},
        source=source,
    )


class _Parser:
    """Typed reads of config values; each failure names the file and the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, expected: str, value: Any) -> ConfigError:
        return ConfigError(f"expected {expected}, got {value!r}", source=self.source, key=key)

    def known(self, data: Mapping[str, Any], valid: set[str], prefix: str) -> None:
        """Refuse a key that is not in ``valid``, naming the closest valid one: a typo
        (``redcat = [...]``) must not silently turn a feature off."""
        for key in data:
            if key in valid:
                continue
            name = f"{prefix}.{key}" if prefix else str(key)
            close = difflib.get_close_matches(str(key), sorted(valid), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"unknown key; {hint}expected one of {', '.join(sorted(valid))}",
                source=self.source,
                key=name,
            )

    def handler(self, value: Any, key: str) -> RetryPolicy:
        data = self.table(value, key)
        self.known(data, {"policy"}, key)
        if "policy" not in data:
            raise ConfigError(
                "a handler's table needs a policy: [handlers.NAME.policy] with max_attempts, ...",
                source=self.source,
                key=key,
            )
        return self.policy(data["policy"], f"{key}.policy")

    def table(self, value: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, "a table", value)
        return value

    def string(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, "a non-empty string", value)
        return value

    def integer(self, value: Any, key: str, *, minimum: int) -> int:
        expected = f"an integer >= {minimum} (and at most {MAX_INTEGER})"
        try:
            number = int(value)
            if isinstance(value, bool) or (isinstance(value, float) and value != number):
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            raise self.fail(key, expected, value) from None
        if not minimum <= number <= MAX_INTEGER:
            raise self.fail(key, expected, value)
        return number

    def patterns(self, value: Any, key: str) -> tuple[str, ...]:
        expected = "a list of field patterns such as ['password', 'card.number', '*.secret']"
        if not isinstance(value, list):
            raise self.fail(key, expected, value)
        for i, pattern in enumerate(value):
            if not isinstance(pattern, str) or not pattern.strip(".* "):
                raise self.fail(f"{key}[{i}]", "a field name or dotted path", pattern)
        return tuple(value)

    def seconds(self, value: Any, key: str) -> float:
        try:
            return parse_duration(value).total_seconds()
        except (TypeError, ValueError, OverflowError):
            raise self.fail(key, "a duration (seconds, or 500ms, 30s, 5m, 2h, 7d)", value) from None

    def number(self, value: Any, key: str) -> float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise self.fail(key, "a number", value) from None

    def classes(self, value: Any, key: str) -> tuple[type[BaseException], ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise self.fail(
                key, "a list of exception class names such as 'httpx.TimeoutException'", value
            )
        return tuple(self.exception_class(name, f"{key}[{i}]") for i, name in enumerate(value))

    def exception_class(self, name: Any, key: str) -> type[BaseException]:
        if not isinstance(name, str):
            raise self.fail(key, "an exception class name", name)
        module_name, _, attribute = name.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name or "builtins"), attribute)
        except (ImportError, AttributeError, ValueError):
            raise self.fail(key, "an importable exception class", name) from None
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise self.fail(key, "an exception class", name)
        return cls

    def policy(self, value: Any, key: str) -> RetryPolicy:
        try:
            return RetryPolicy(**self.policy_fields(value, key))
        except PolicyError as exc:
            raise ConfigError(str(exc), source=self.source, key=key) from exc

    def policy_fields(self, value: Any, key: str) -> dict[str, Any]:
        """The validated fields a policy table sets (the others are left to the layers
        below it: see ``Settings.policy_for``)."""
        data = self.table(value, key)
        self.known(data, _POLICY_KEYS, key)
        fields: dict[str, Any] = {}
        if "max_attempts" in data:
            fields["max_attempts"] = self.integer(
                data["max_attempts"], f"{key}.max_attempts", minimum=1
            )
        for name in ("initial_delay", "max_delay"):
            if name in data:
                fields[name] = self.seconds(data[name], f"{key}.{name}")
        if "multiplier" in data:
            fields["multiplier"] = self.number(data["multiplier"], f"{key}.multiplier")
        if "jitter" in data:
            if data["jitter"] not in ("full", "equal", "none"):
                raise self.fail(f"{key}.jitter", "'full', 'equal' or 'none'", data["jitter"])
            fields["jitter"] = data["jitter"]
        if "retry_on" in data:
            fields["retry_on"] = self.classes(data["retry_on"], f"{key}.retry_on")
        if "dead_on" in data:  # added to the built-in non-retriable errors
            fields["dead_on"] = DEFAULT_DEAD_ON + self.classes(data["dead_on"], f"{key}.dead_on")
        return fields

    def topic(self, value: Any, key: str) -> TopicSettings:
        data = self.table(value, key)
        self.known(data, _TOPIC_KEYS, key)
        retention = None
        if "retention" in data:
            retention = timedelta(seconds=self.seconds(data["retention"], f"{key}.retention"))
        dlq_topic = (
            self.string(data["dlq_topic"], f"{key}.dlq_topic") if "dlq_topic" in data else None
        )
        return TopicSettings(
            policy=self.policy(data["policy"], f"{key}.policy") if "policy" in data else None,
            policy_fields=self.policy_fields(data["policy"], f"{key}.policy")
            if "policy" in data
            else {},
            retention=retention,
            dlq_topic=dlq_topic,
            alerts=self.table(data.get("alerts", {}), f"{key}.alerts"),
        )
