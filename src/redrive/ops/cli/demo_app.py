"""The small shop behind ``redrive demo``: four topics and handlers that fail the way real
ones do. ``create_bus`` has the bug; ``fixed_bus`` is the same app after the fix, for
``redrive worker --app redrive.ops.cli.demo_app:fixed_bus``.

This is application code (it runs handlers), so it uses the public ``redrive`` API like
any app would.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import redrive

if TYPE_CHECKING:
    from redrive import Event, EventBus, Settings

QUICK = {"initial_delay": 0.05, "max_delay": 0.2, "jitter": "none"}
"""Short backoffs, so that the demo's retries finish in about a second."""


class _Flaky:
    """Fails the first attempt of each event with a connection error, then succeeds:
    a downstream service that blips."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            first = event.id not in self._seen
            self._seen.add(event.id)
        if first:
            raise ConnectionError("receipt service unavailable (503)")


def capture_payment(event: Event) -> None:
    """A poison payload (an amount that is not a number) can never succeed."""
    amount = event.payload["amount"]
    if not isinstance(amount, int | float):
        raise ValueError(f"amount must be a number, got {amount!r}")


def reserve_stock_buggy(event: Event) -> None:
    """The bug: orders without a warehouse crash, every time, with the same error."""
    event.payload["warehouse"].upper()


def reserve_stock_fixed(event: Event) -> None:
    """The fix: orders without a warehouse go to the main one."""
    (event.payload.get("warehouse") or "main").upper()


def send_email(event: Event) -> None:
    """Always works: not every topic has failures."""


def create_bus(settings: Settings, *, fixed: bool = False, **options: Any) -> EventBus:
    """The demo app on the configured store (``settings.store_url``)."""
    store = options.pop("store", None) or redrive.open_store(settings.store_url)
    bus = redrive.EventBus(store, settings=settings, service="redrive-demo", **options)
    quick = redrive.RetryPolicy(max_attempts=3, **QUICK)  # type: ignore[arg-type]
    bus.subscribe("orders.created", _Flaky(), name="demo.send_receipt", policy=quick)
    bus.subscribe("payments.captured", capture_payment, name="demo.capture_payment", policy=quick)
    reserve = reserve_stock_fixed if fixed else reserve_stock_buggy
    bus.subscribe("inventory.reserved", reserve, name="demo.reserve_stock", policy=quick)
    bus.subscribe("emails.send", send_email, name="demo.send_email", policy=quick)
    return bus


def fixed_bus(settings: Settings) -> EventBus:
    """The demo app with the bug fixed: replayed records now succeed."""
    return create_bus(settings, fixed=True)
