"""``redrive serve``: the REST API and web console on the configured store (uvicorn)."""

from __future__ import annotations

from typing import Annotated

import typer

from redrive.ops.cli._state import EXIT_USAGE, CliState, fail


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""
    app.command("serve")(serve)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 8765,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn's log level.")] = "info",
    monitor: Annotated[
        bool,
        typer.Option(
            "--monitor", help="Also run the alert monitor (as `redrive monitor` would) in-process."
        ),
    ] = False,
) -> None:
    """Serve the REST API (/api/v1), the web console (/), /metrics and health checks.

    \b
    Example: redrive --store postgresql://app@db/app serve --host 0.0.0.0 --monitor
    """
    try:
        import uvicorn

        from redrive.ops.api import create_app
    except ImportError:
        message = 'the server needs its extra: pip install "redrive[server]"'
        raise fail(message, EXIT_USAGE) from None
    state: CliState = ctx.obj
    from redrive.ops.cli._common import missing_store

    problem = missing_store(state.settings.store_url)
    if problem:
        raise fail(problem, EXIT_USAGE)
    service = state.service()
    alerts = None
    if monitor:
        import os

        from redrive.ops.alerts import Monitor

        alerts = Monitor.from_settings(state.settings, service, environ=os.environ)
    app = create_app(service, state.settings, monitor=alerts)
    from redrive.bootstrap import mask_url

    typer.echo(
        f"redrive serving {mask_url(state.settings.store_url)} on http://{host}:{port}/", err=True
    )
    # Proxy headers are off: a client could otherwise pick the address the log shows.
    uvicorn.run(
        app, host=host, port=port, log_level=log_level, proxy_headers=False, server_header=False
    )
