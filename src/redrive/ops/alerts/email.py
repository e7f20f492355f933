"""The email sink: plain-text alerts over SMTP, with optional STARTTLS and login.

smtplib is blocking, so each send runs in a worker thread with a timeout on every
socket operation: a dead mail server delays only this sink, never the monitor.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage

from redrive.ops.alerts.alert import Alert
from redrive.ops.alerts.sinks import SinkError


class EmailSink:
    """Sends each alert as an email.

    :param starttls: upgrade the connection with STARTTLS before logging in.
    :param ca_file: CA bundle to verify the server with (default: the system's).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        sender: str,
        to: Sequence[str],
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        ca_file: str | None = None,
        timeout: float = 10.0,
        min_severity: str = "warning",
    ) -> None:
        self.name = name
        self.min_severity = min_severity
        self._host = host
        self._port = port
        self._sender = sender
        self._to = list(to)
        self._username = username
        self._password = password
        self._starttls = starttls
        self._ca_file = ca_file
        self._timeout = timeout

    def __repr__(self) -> str:  # never show the password
        return f"EmailSink({self.name!r}, host={self._host!r}, port={self._port})"

    async def send(self, alert: Alert) -> None:
        await asyncio.to_thread(self._send, render(alert, self._sender, self._to))

    def _send(self, message: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=self._ca_file))
                if self._username:
                    smtp.login(self._username, self._password or "")
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError:
            raise SinkError(f"{self.name}: the SMTP server refused the login") from None
        except smtplib.SMTPResponseException as exc:
            raise SinkError(f"{self.name}: SMTP error {exc.smtp_code}") from None
        except (smtplib.SMTPException, OSError) as exc:  # class only: no addresses, no secrets
            raise SinkError(f"{self.name}: {type(exc).__name__}") from None


def render(alert: Alert, sender: str, to: Sequence[str]) -> EmailMessage:
    """The email for ``alert``: the title as subject, the payload's fields as text."""
    message = EmailMessage()
    message["Subject"] = f"[redrive] {alert.title}"
    message["From"] = sender
    message["To"] = ", ".join(to)
    data = alert.to_dict()
    lines = [alert.message, ""]
    for key in (
        "status",
        "severity",
        "topic",
        "rule",
        "value",
        "threshold",
        "dead_letters",
        "oldest_age_seconds",
        "timestamp",
        "alert_id",
    ):
        lines.append(f"{key}: {data[key]}")
    if alert.groups:
        lines += ["", "Top error groups:"]
        for group in alert.groups:
            lines.append(
                f"  {group.get('count')} x {group.get('error_type')} in {group.get('handler')}: "
                f"{group.get('sample_message')}"
            )
    if alert.console_url:
        lines += ["", f"Console: {alert.console_url}"]
    message.set_content("\n".join(lines) + "\n")
    return message
