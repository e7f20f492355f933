"""``redrive monitor``, ``redrive alerts test --sink NAME`` and ``redrive alerts status``."""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING, Annotated

import typer

from redrive.ops.cli._state import EXIT_NOT_FOUND, CliState, fail

if TYPE_CHECKING:
    from redrive.ops.alerts import Alert, Monitor, RuleStatus


def register(app: typer.Typer) -> None:
    """Add the alerting commands to ``app``."""
    app.command("monitor")(monitor)
    alerts = typer.Typer(
        name="alerts", help="Test alert sinks and show alert states.", no_args_is_help=True
    )
    alerts.command("test")(test)
    alerts.command("status")(status)
    app.add_typer(alerts, name="alerts")


def _monitor(ctx: typer.Context) -> Monitor:
    from redrive.ops.alerts import Monitor

    state: CliState = ctx.obj
    return Monitor.from_settings(state.settings, state.service(), environ=dict(os.environ))


def monitor(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Evaluate once, send what is due, and exit.")
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", help="Also serve /metrics (sink failures) on this port."),
    ] = None,
) -> None:
    """Evaluate the alert rules every interval and notify the configured sinks."""
    import asyncio  # here, not at the top: `redrive --help` must stay fast

    mon = _monitor(ctx)
    if not logging.getLogger().handlers:  # the log sink and sink failures must show
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if once:
        try:
            alerts = asyncio.run(_once(mon))
        except asyncio.CancelledError:
            raise fail("stopped by a second SIGTERM before the evaluation finished", 143) from None
        if ctx.obj.json:
            typer.echo(json.dumps([alert.to_dict() for alert in alerts], indent=2))
        for alert in [] if ctx.obj.json else alerts:
            typer.echo(alert.title)
        if not alerts and not ctx.obj.json:
            typer.echo("no notifications due")
        return
    server = None
    if metrics_port is not None:
        from redrive.ops.metrics import start_http_server

        server = start_http_server(metrics_port, mon.service, monitor=mon)
    sinks = ", ".join(mon.sink_names())
    typer.echo(f"monitoring every {mon.config.interval:g}s; sinks: {sinks} (Ctrl-C to stop)")
    try:
        asyncio.run(_run(mon))
    finally:
        if server is not None:
            server.close()


async def _once(mon: Monitor) -> list[Alert]:
    """One evaluation that gives the replica lock up when it ends, even on SIGTERM: a cron
    job's next ``--once`` must not find the lock still held and evaluate nothing.

    A first SIGTERM lets the evaluation in progress finish (its notifications are decided
    and written already; each sink's timeout and retries bound the wait), so none is lost;
    a second one cancels it at once. Either way the lock is released before exit."""
    import asyncio
    import signal

    task, terms = asyncio.current_task(), 0

    def on_term() -> None:
        nonlocal terms
        terms += 1
        if terms == 1:
            typer.echo(
                "SIGTERM: finishing the evaluation in progress (SIGTERM again to stop now)",
                err=True,
            )
        elif task is not None:
            task.cancel()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, on_term)
    try:
        return await mon.evaluate_once()
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        await mon.release()


async def _run(mon: Monitor) -> None:
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(mon.stop()))
    await mon.start()
    await mon.wait()


def test(
    ctx: typer.Context,
    sink: Annotated[str, typer.Option("--sink", help="The sink's name in [alerts.sinks].")],
) -> None:
    """Send a test alert to one sink."""
    import asyncio

    from redrive.ops.alerts import SinkError

    mon = _monitor(ctx)
    if sink not in mon.sinks:
        raise fail(
            f"no sink named {sink!r}; configured: {', '.join(mon.sink_names())}", EXIT_NOT_FOUND
        )
    try:
        asyncio.run(mon.send_test(sink))
    except SinkError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"test alert sent to {sink}")


def status(ctx: typer.Context) -> None:
    """Show each rule of each topic: its state now and what was last notified."""
    rows = _monitor(ctx).status()
    if ctx.obj.json:
        typer.echo(json.dumps([_row_json(row) for row in rows], indent=2))
        return
    if not rows:
        typer.echo("no topics to watch yet")
        return
    header = ("TOPIC", "RULE", "NOW", "VALUE", "THRESHOLD", "NOTIFIED", "LAST SENT")
    table = [header, *(_row_text(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))


def _row_text(row: RuleStatus) -> tuple[str, ...]:
    from redrive.ops.alerts.rules import _duration

    def shown(value: float | None) -> str:
        if value is None:
            return "-"
        return _duration(value) if row.family == "max_age" else f"{value:g}"

    sent = row.last_sent_at.strftime("%Y-%m-%d %H:%M:%S") if row.last_sent_at else "-"
    return (
        row.topic,
        row.family,
        row.severity,
        shown(row.value),
        shown(row.threshold),
        row.notified,
        sent,
    )


def _row_json(row: RuleStatus) -> dict[str, object]:
    return {
        "topic": row.topic,
        "rule": row.family,
        "severity": row.severity,
        "crossed": row.rule,
        "value": row.value,
        "threshold": row.threshold,
        "notified": row.notified,
        "since": row.since.isoformat() if row.since else None,
        "last_sent_at": row.last_sent_at.isoformat() if row.last_sent_at else None,
    }
