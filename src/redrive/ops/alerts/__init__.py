"""Threshold alerts on dead letters: per-topic rules, a monitor, and sinks.

``pip install "redrive[alerts]"`` (httpx, for the webhook and Slack sinks). Run it as
``redrive monitor``, or in an app::

    monitor = Monitor.from_settings(settings, DeadLetterQueue(store), environ=os.environ)
    await monitor.start()
    ...
    await monitor.stop()
"""

from __future__ import annotations

from redrive.ops.alerts.alert import Alert
from redrive.ops.alerts.config import AlertsConfig, load
from redrive.ops.alerts.email import EmailSink
from redrive.ops.alerts.monitor import Monitor, RuleStatus
from redrive.ops.alerts.rules import TopicRules
from redrive.ops.alerts.sinks import LogSink, Sink, SinkError, SlackSink, WebhookSink, sign

__all__ = [
    "Alert",
    "AlertsConfig",
    "EmailSink",
    "LogSink",
    "Monitor",
    "RuleStatus",
    "Sink",
    "SinkError",
    "SlackSink",
    "TopicRules",
    "WebhookSink",
    "load",
    "sign",
]
