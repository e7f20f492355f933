"""Where alerts go: a structured log, a signed JSON webhook, a Slack incoming webhook.

(Email is in :mod:`redrive.ops.alerts.email`.) A sink raises :class:`SinkError` when it
could not deliver; its message never contains the URL, the secret or a password, because
webhook URLs are secrets (Slack's are bearer tokens) and the message is logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

from redrive.ops.alerts.alert import Alert
from redrive.ops.alerts.rules import rank

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "LogSink",
    "Sink",
    "SinkError",
    "SlackSink",
    "WebhookSink",
    "sign",
]

SIGNATURE_HEADER = "X-Redrive-Signature"
TIMESTAMP_HEADER = "X-Redrive-Timestamp"
_RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class SinkError(Exception):
    """A sink could not deliver an alert; the message is safe to log."""


class Sink(Protocol):
    """Anything that can deliver an alert.

    ``min_severity`` (``warning`` or ``critical``) filters what the monitor hands it.
    """

    name: str
    min_severity: str

    async def send(self, alert: Alert) -> None:
        """Deliver ``alert``; raise :class:`SinkError` if it could not."""


def accepts(sink: Sink, alert: Alert) -> bool:
    """Whether ``alert`` is severe enough for ``sink`` (test alerts always are)."""
    return alert.test or rank(alert.severity) >= rank(sink.min_severity)


class LogSink:
    """Logs each alert on ``redrive.alerts`` as one JSON line, with the payload in
    ``extra={"alert": ...}`` for structured handlers. Critical alerts log at ERROR,
    warnings at WARNING, resolutions at INFO.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        name: str = "log",
        *,
        min_severity: str = "warning",
        logger: logging.Logger | None = None,
    ) -> None:
        self.name = name
        self.min_severity = min_severity
        self._logger = logger or logging.getLogger("redrive.alerts")

    async def send(self, alert: Alert) -> None:
        level = logging.WARNING
        if alert.status == "resolved":
            level = logging.INFO
        elif alert.severity == "critical":
            level = logging.ERROR
        payload = alert.to_dict()
        self._logger.log(
            level, "alert %s", json.dumps(payload, sort_keys=True), extra={"alert": payload}
        )


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value: ``sha256=`` + HMAC-SHA256 of ``timestamp.body``.

    Signing the timestamp too lets receivers reject replays of old deliveries.
    """
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class _Poster:
    """POSTs a body with a timeout, retrying transport errors, 429 and 5xx with backoff."""

    def __init__(self, name: str, url: str, *, timeout: float, retries: int, backoff: float):
        self.name = name
        self._url = url
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff

    async def post(self, body: bytes, headers: Mapping[str, str]) -> None:
        import httpx

        delay, tries, reason = self._backoff, 0, ""
        async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as client:
            while tries <= self._retries:
                tries += 1
                failed = await self._try(client, body, headers)
                if failed is None:
                    return
                reason = failed.removeprefix("retriable: ")
                if reason == failed:  # not worth another try (a 4xx: the request is wrong)
                    break
                if tries <= self._retries:
                    await asyncio.sleep(delay)
                    delay *= 2
        raise SinkError(f"{self.name}: {reason} after {tries} tries")

    async def _try(self, client: Any, body: bytes, headers: Mapping[str, str]) -> str | None:
        """None on success, else why (prefixed ``retriable:`` when worth another try)."""
        import httpx

        try:
            response = await client.post(self._url, content=body, headers=dict(headers))
        except httpx.TimeoutException:
            return "retriable: timed out"
        except httpx.HTTPError as exc:  # the class name only: messages can carry the URL
            return f"retriable: {type(exc).__name__}"
        if response.is_success:
            return None
        status = f"HTTP {response.status_code}"
        return f"retriable: {status}" if response.status_code in _RETRY_STATUSES else status


class WebhookSink:
    """POSTs the alert as JSON, signed with HMAC-SHA256 when ``secret`` is set.

    Headers: ``X-Redrive-Timestamp`` (unix seconds) and ``X-Redrive-Signature``
    (``sha256=<hex>`` of ``timestamp + "." + body``, see :func:`sign`).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        name: str,
        url: str,
        *,
        secret: str | None = None,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 1.0,
        min_severity: str = "warning",
    ) -> None:
        self.name = name
        self.min_severity = min_severity
        self._secret = secret.encode() if secret else None
        self._poster = _Poster(name, url, timeout=timeout, retries=retries, backoff=backoff)

    def __repr__(self) -> str:  # never show the URL or the secret
        return f"WebhookSink({self.name!r})"

    async def send(self, alert: Alert) -> None:
        body = json.dumps(alert.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            "User-Agent": "redrive-alerts",
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        await self._poster.post(body, headers)


class SlackSink:
    """Posts the alert to a Slack incoming webhook as readable blocks.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 1.0,
        min_severity: str = "warning",
    ) -> None:
        self.name = name
        self.min_severity = min_severity
        self._poster = _Poster(name, url, timeout=timeout, retries=retries, backoff=backoff)

    def __repr__(self) -> str:  # the URL is the credential
        return f"SlackSink({self.name!r})"

    async def send(self, alert: Alert) -> None:
        body = json.dumps(slack_message(alert)).encode()
        await self._poster.post(body, {"Content-Type": "application/json"})


_ICONS = {"critical": ":red_circle:", "warning": ":warning:", "resolved": ":white_check_mark:"}


def slack_message(alert: Alert) -> dict[str, Any]:
    """The Slack message: a header, the message, key fields, top groups, a console button."""
    state = "resolved" if alert.status == "resolved" else alert.severity
    header = f"{_ICONS.get(state, '')} {state.upper()} · {alert.topic}".strip()
    fields = [
        ("Rule", alert.rule),
        ("Value", _fmt(alert.value)),
        ("Threshold", _fmt(alert.threshold)),
        ("Dead letters", str(alert.dead_letters)),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _escape(alert.message)}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{_escape(v)}"} for k, v in fields],
        },
    ]
    if alert.groups:
        lines = [
            f"• {g.get('count')} x `{_escape(str(g.get('error_type')))}` in "
            f"{_escape(str(g.get('handler')))}: {_escape(str(g.get('sample_message')))}"
            for g in alert.groups
        ]
        text = "*Top error groups*\n" + "\n".join(lines)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    if alert.console_url:
        button = {
            "type": "button",
            "text": {"type": "plain_text", "text": "Open in console"},
            "url": alert.console_url,
        }
        blocks.append({"type": "actions", "elements": [button]})
    context = f"alert {alert.alert_id} · {alert.to_dict()['timestamp']}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {"text": alert.title, "blocks": blocks}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _escape(text: str) -> str:
    """Slack's mrkdwn needs only these three escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
