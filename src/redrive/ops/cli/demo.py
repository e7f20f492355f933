"""``redrive demo``: a small realistic workload on the configured store, then what to try."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from redrive.ops.cli._common import handle_errors, service, state_of

if TYPE_CHECKING:
    from redrive.service import DeadLetterQueue

SETTLE_TIMEOUT = 30.0
"""Seconds the demo waits for its automatic retries to finish."""


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""
    app.command("demo")(demo)


@handle_errors
def demo(
    ctx: typer.Context,
    events: Annotated[
        int, typer.Option("--events", min=10, max=100_000, help="Events to publish.")
    ] = 60,
) -> None:
    """Run a small shop on the configured store: transient failures that recover, a
    poison payload, and a bug that fails many events the same way. Then explore it.

    Example: redrive demo && redrive groups
    """
    import asyncio

    from redrive.ops.cli.demo_app import create_bus

    state = state_of(ctx)
    bus = create_bus(state.settings, store=state.store)
    run = f"demo-{time.strftime('%Y%m%dT%H%M%S')}"
    asyncio.run(_workload(bus, run, events))
    _report(service(ctx), run, state.settings.store_url)


async def _workload(bus: Any, run: str, events: int) -> None:
    """Publish ``events`` events over four topics and let the retries run."""
    import asyncio

    async with bus:
        for number in range(events):
            topic, payload = _event(number)
            await bus.publish(topic, payload, correlation_id=run, key=f"order-{1000 + number}")
        await asyncio.to_thread(_wait_settled, service_of(bus), run)


def service_of(bus: Any) -> DeadLetterQueue:
    from redrive.service import DeadLetterQueue

    return DeadLetterQueue(bus.store)


def _event(number: int) -> tuple[str, dict[str, Any]]:
    order = 1000 + number
    kind = number % 4
    if kind == 0:
        return "orders.created", {"order_id": order, "email": f"customer{number}@example.com"}
    if kind == 1:
        amount: Any = "twelve" if number == 1 else round(9.99 + number, 2)
        return "payments.captured", {"order_id": order, "amount": amount, "card": {"last4": "4242"}}
    if kind == 2:
        warehouse = None if number % 8 == 2 else "berlin"
        return "inventory.reserved", {
            "order_id": order,
            "sku": f"SKU-{number % 7}",
            "warehouse": warehouse,
        }
    return "emails.send", {"order_id": order, "template": "shipped"}


def _wait_settled(dlq: DeadLetterQueue, run: str) -> None:
    """Poll until none of this run's records is waiting for a retry (or time is up)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        if dlq.count(correlation_id=run, status=["scheduled", "retrying"]) == 0:
            return
        time.sleep(0.05)


def _program() -> str:
    """``redrive`` if the shell finds this very script by that name, else its path."""
    import os
    import shutil
    import sys

    script = os.path.realpath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    found = shutil.which("redrive")
    if found and (not script.endswith("redrive") or os.path.realpath(found) == script):
        return "redrive"
    if script.endswith("redrive"):
        return os.path.relpath(script) if not os.path.relpath(script).startswith("..") else script
    return "redrive"


def _venv() -> str:
    import os

    return os.path.join(os.path.dirname(_program()), "activate")


def _report(dlq: DeadLetterQueue, run: str, url: str) -> None:
    resolved = dlq.count(correlation_id=run, status="resolved")
    dead = dlq.count(correlation_id=run, status="dead")
    groups = dlq.groups(correlation_id=run)
    poison = dlq.list(correlation_id=run, topic="payments.captured", limit=1).items
    bug = next((g for g in groups if g.topic == "inventory.reserved"), None)
    echo = typer.echo
    echo(f"demo: published events on 4 topics to {url} (correlation id {run})")
    echo(f"  {resolved} failed at first and then succeeded on an automatic retry (resolved)")
    echo(f"  {dead} are dead letters, in {len(groups)} error groups:")
    for group in groups:
        echo(
            f"    {group.count:>4} x {group.error_type} in {group.handler}: {group.sample_message}"
        )
    echo("\ntry next:")
    if _program() != "redrive":
        echo(f"  (`redrive` is not on your PATH: run {_program()}, or first `source {_venv()}`)")
    echo("  redrive stats                          # what failed, where, since when")
    echo("  redrive groups                         # one line per cause")
    if poison:
        echo(f"  redrive show {poison[0].id}")
        echo(f"  redrive retry {poison[0].id} --patch '{{\"amount\": 12}}'")
    if bug:
        echo(f"  redrive retry --group {bug.fingerprint} --dry-run")
        echo(f"  redrive retry --group {bug.fingerprint} --yes")
    echo("  redrive worker --app redrive.ops.cli.demo_app:fixed_bus   # the bug fixed; Ctrl-C")
    echo("  redrive audit                          # who did what")
