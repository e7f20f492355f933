"""``redrive worker --app module:attr``: run an app's scheduler without the app.

Replays and automatic retries then run even when the application's own process is down
(the worker imports the app's handlers; it serves no traffic). Once an hour it also
applies the per-topic retention of the config.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from redrive.ops.cli._common import BadInput, handle_errors, import_target, parse_age, state_of

if TYPE_CHECKING:
    from redrive.config import Settings


def register(app: typer.Typer) -> None:
    """Add ``worker`` to ``app``."""
    app.command("worker")(worker)


@handle_errors
def worker(
    ctx: typer.Context,
    app_path: Annotated[
        str,
        typer.Option("--app", help="module:attr of an EventBus, or of a function returning one."),
    ],
    retention_every: Annotated[
        str, typer.Option("--retention-every", help="How often to apply topic retention.")
    ] = "1h",
) -> None:
    """Run the scheduler of an application's EventBus: retries and operators' replays.

    The function form may take the settings: def make_bus(settings) -> EventBus.
    Stops on Ctrl-C or SIGTERM after the records in flight finish.

    Example: redrive worker --app myshop.events:bus
    """
    import asyncio

    settings = state_of(ctx).settings
    every = parse_age(retention_every, "--retention-every")
    bus = load_bus(app_path, settings)
    asyncio.run(_serve(bus, settings, every))


def load_bus(path: str, settings: Settings, option: str = "--app") -> Any:
    """Import ``module:attr``; call it (with the settings if it takes an argument) when it
    is a factory. The current directory is importable, as for ``python -m``."""
    import inspect

    target = import_target(path, option)
    if callable(target) and not hasattr(target, "scheduler"):
        takes_settings = bool(inspect.signature(target).parameters)
        target = target(settings) if takes_settings else target()
    if not hasattr(target, "scheduler") or not hasattr(target, "handlers"):
        raise BadInput(f"{option}: {path} is not an EventBus (or a function returning one)")
    return target


async def _serve(bus: Any, settings: Settings, every: timedelta) -> None:
    import asyncio
    import signal

    from redrive.service import DeadLetterQueue

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    retention = {t: s.retention for t, s in settings.topics.items() if s.retention is not None}
    dlq = DeadLetterQueue(bus.store, actor="redrive worker")
    presence = bus.scheduler.presence
    presence.kind, presence.version = "worker", settings.version
    async with bus:
        names = sorted({f"{spec.topic}/{spec.name}" for spec in bus.handlers()})
        typer.echo(f"worker ready: {len(names)} handlers on {bus.store.url}", err=True)
        while not stop.is_set():
            await asyncio.to_thread(_apply_retention, dlq, retention)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every.total_seconds())
    typer.echo(f"worker stopped; {presence.summary()}", err=True)


def _apply_retention(dlq: Any, retention: dict[str, timedelta]) -> None:
    results = dlq.apply_retention(retention)
    purged = sum(result.changed for result in results.values())
    if purged:
        typer.echo(f"retention: purged {purged} records", err=True)
