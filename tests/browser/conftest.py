"""Fixtures of the browser tests: a served console over a seeded SQLite store, and
Debian's Chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from redrive.config import Settings
from redrive.models import DeadLetter, Status
from redrive.ops.api import create_app
from redrive.ops.auth import Tokens
from redrive.service import DeadLetterQueue
from redrive.stores.sqlite import SQLiteStore
from tests.api.server import Server
from tests.factories import ago, make_record

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@dataclasses.dataclass
class Console:
    """A running console and what is behind it."""

    url: str
    service: DeadLetterQueue
    tokens: dict[str, str]
    records: list[DeadLetter]


def _payment(minutes: int) -> DeadLetter:
    return make_record(
        topic="payments.captured",
        handler="app.ledger",
        error_type="TimeoutError",
        error_message=f"ledger timed out after {minutes}s",
        fingerprint="pay-timeout",
        created_at=ago(60 * minutes),
    )


def _seed() -> list[DeadLetter]:
    secret = {"order_id": 42, "customer": {"email": "a@example.com", "password": "hunter2"}}
    records = [
        make_record(topic="orders.created", payload=secret, created_at=ago(3600 * 5)),
        *[_payment(n) for n in range(1, 4)],
        make_record(
            topic="emails.sent",
            handler="app.mailer",
            error_type="KeyError",
            error_message="'template'",
            fingerprint="mail-key",
            created_at=ago(86400 * 2),
        ),
        make_record(topic="orders.created", status=Status.RESOLVED, created_at=ago(7200)),
    ]
    return records


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    """The app on real uvicorn over a seeded store, with an operator and an admin token."""
    store = SQLiteStore(tmp_path / "console.db")
    records = _seed()
    store.add(records)
    service = DeadLetterQueue(store)
    tokens = {
        role: Tokens(service).create(f"{role}-token", role)[0]
        for role in ("viewer", "operator", "admin")
    }
    settings = Settings(redact=("password",))
    with Server(create_app(service, settings)) as url:
        yield Console(url=url, service=service, tokens=tokens, records=records)
    store.close()


# Module, not session: sync Playwright keeps an event loop running in this thread while it
# is open, which would break every asyncio test that runs after the browser tests.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium from the system (Debian's package)."""
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: apt-get install -y chromium (scripts/test does it)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context and page at 1280 px wide."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    # Mass actions ask "Replay 3 dead letters?": the tests answer yes (and check the
    # question in the page's data-confirm attributes).
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    context.close()


def shot(page: Page, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/browser/ and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Page, console: Console, role: str = "operator", start: str = "/") -> None:
    """Open ``start``, get sent to the sign-in form, and sign in with ``role``'s token."""
    page.goto(console.url + start)
    page.get_by_label("Token").fill(console.tokens[role])
    page.get_by_role("button", name="Sign in").click()
