"""Each sink against a real local receiver: HTTP on 127.0.0.1, SMTP through aiosmtpd."""

from __future__ import annotations

import logging
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from redrive.ops.alerts import Alert, EmailSink, LogSink, SinkError, SlackSink, WebhookSink
from tests.helpers import free_port
from tests.ops.conftest import Receiver

ALERT = Alert(
    alert_id="a1",
    timestamp=datetime(2026, 1, 1, 12, tzinfo=UTC),
    status="firing",
    severity="critical",
    topic="trade",
    rule="critical_count",
    message="trade: 21 dead letters (critical threshold 20)",
    value=21,
    threshold=20,
    oldest_age_seconds=3600.0,
    dead_letters=21,
    groups=[
        {
            "count": 21,
            "error_type": "TimeoutError",
            "handler": "app.book",
            "sample_message": "<venue> timed out",
            "fingerprint": "f",
            "last_seen": None,
        }
    ],
    console_url="https://dlq.example.com/dead-letters?topic=trade&status=dead",
)


class TestWebhook:
    async def test_retries_server_errors(self, receiver: Receiver) -> None:
        """A 503 is retried with backoff until the receiver accepts."""
        receiver.statuses = [503, 503]
        await WebhookSink("w", receiver.url(), retries=3, backoff=0).send(ALERT)
        assert len(receiver.requests) == 3
        assert receiver.bodies()[-1]["alert_id"] == "a1"

    async def test_gives_up_after_retries(self, receiver: Receiver) -> None:
        """After its retries the sink raises a SinkError saying why."""
        receiver.statuses = [500, 500, 500]
        with pytest.raises(SinkError, match=r"^w: HTTP 500 after 3 tries$"):
            await WebhookSink("w", receiver.url(), retries=2, backoff=0).send(ALERT)

    async def test_client_errors_are_not_retried(self, receiver: Receiver) -> None:
        """A 400 means the request is wrong: it is not sent again."""
        receiver.statuses = [400]
        with pytest.raises(SinkError, match="HTTP 400 after 1 tries"):
            await WebhookSink("w", receiver.url(), retries=3, backoff=0).send(ALERT)
        assert len(receiver.requests) == 1

    async def test_timeout(self, silent_port: int) -> None:
        """A receiver that never answers fails the send after the timeout."""
        sink = WebhookSink("w", f"http://127.0.0.1:{silent_port}/x", timeout=0.2, retries=0)
        with pytest.raises(SinkError, match="timed out"):
            await sink.send(ALERT)

    async def test_unsigned_without_secret(self, receiver: Receiver) -> None:
        """Without a secret no signature header is sent."""
        await WebhookSink("w", receiver.url(), retries=0).send(ALERT)
        assert "X-Redrive-Signature" not in receiver.requests[0].headers


class TestSlack:
    async def test_blocks(self, receiver: Receiver) -> None:
        """Slack gets a fallback text and blocks: header, fields, groups, console button."""
        await SlackSink("s", receiver.url("/services/T/B/X"), retries=0).send(ALERT)
        body = receiver.bodies()[0]
        assert body["text"] == "[CRITICAL] trade: 21 dead letters (critical threshold 20)"
        types = [block["type"] for block in body["blocks"]]
        assert types == ["header", "section", "section", "section", "actions", "context"]
        assert "&lt;venue&gt; timed out" in body["blocks"][3]["text"]["text"]
        assert body["blocks"][4]["elements"][0]["url"] == ALERT.console_url


class TestLog:
    async def test_structured_record(self, caplog: pytest.LogCaptureFixture) -> None:
        """The log sink logs critical alerts at ERROR with the payload attached."""
        with caplog.at_level(logging.INFO, logger="redrive.alerts"):
            await LogSink().send(ALERT)
        [record] = caplog.records
        assert record.levelno == logging.ERROR
        assert record.alert["rule"] == "critical_count"  # type: ignore[attr-defined]


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


def check_login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"ops", b"s3cret")
    return AuthResult(success=ok, handled=False)  # not handled: the server answers 535


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1."""
    if shutil.which("openssl") is None:  # scripts/test installs it: never skip STARTTLS in CI
        pytest.fail("openssl is needed to make a test certificate: apt-get install -y openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def smtp(request: pytest.FixtureRequest) -> Iterator[tuple[Inbox, int]]:
    """aiosmtpd on 127.0.0.1; parametrised indirectly with Controller options."""
    inbox = Inbox()
    options = dict(getattr(request, "param", {}))
    if "certificate" in options:
        cert, key = request.getfixturevalue("certificate")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        options = {"tls_context": context, "require_starttls": True}
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    yield inbox, port
    controller.stop()


def email_sink(port: int, **options: Any) -> EmailSink:
    return EmailSink(
        "mail",
        host="127.0.0.1",
        port=port,
        sender="redrive@example.com",
        to=["ops@example.com"],
        **options,
    )


class TestEmail:
    async def test_plain(self, smtp: tuple[Inbox, int]) -> None:
        """An alert arrives as an email with the title as subject."""
        inbox, port = smtp
        await email_sink(port).send(ALERT)
        [envelope] = inbox.messages
        message = message_from_bytes(envelope.content)
        assert (
            message["Subject"]
            == "[redrive] [CRITICAL] trade: 21 dead letters (critical threshold 20)"
        )
        assert envelope.rcpt_tos == ["ops@example.com"]
        assert "Console: https://dlq.example.com/" in message.get_payload()

    @pytest.mark.parametrize(
        "smtp", [{"authenticator": check_login, "auth_require_tls": False}], indirect=True
    )
    async def test_login(self, smtp: tuple[Inbox, int]) -> None:
        """With a username the sink logs in before sending."""
        inbox, port = smtp
        await email_sink(port, username="ops", password="s3cret").send(ALERT)
        assert len(inbox.messages) == 1

    @pytest.mark.parametrize(
        "smtp", [{"authenticator": check_login, "auth_require_tls": False}], indirect=True
    )
    async def test_wrong_password(self, smtp: tuple[Inbox, int]) -> None:
        """A refused login is a SinkError that does not show the password."""
        _, port = smtp
        with pytest.raises(SinkError) as caught:
            await email_sink(port, username="ops", password="wrong-pw").send(ALERT)
        assert "refused the login" in str(caught.value)
        assert "wrong-pw" not in str(caught.value)

    @pytest.mark.parametrize("smtp", [{"certificate": True}], indirect=True)
    async def test_starttls(self, smtp: tuple[Inbox, int], certificate: tuple[Path, Path]) -> None:
        """With ``starttls`` the sink upgrades the connection and verifies the server."""
        inbox, port = smtp
        await email_sink(port, starttls=True, ca_file=str(certificate[0])).send(ALERT)
        assert len(inbox.messages) == 1

    async def test_server_down(self) -> None:
        """No server: a SinkError naming the error class."""
        with pytest.raises(SinkError, match=r"^mail: ConnectionRefusedError$"):
            await email_sink(free_port(), timeout=2).send(ALERT)
