"""``redrive serve``: the REST API and web console on the configured store (uvicorn)."""

from __future__ import annotations

from typing import Annotated

import typer

from redrive.ops.cli.app import EXIT_USAGE, CliState, fail


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""
    app.command("serve")(serve)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 8765,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn's log level.")] = "info",
) -> None:
    """Serve the REST API (/api/v1), the web console (/) and health checks."""
    try:
        import uvicorn

        from redrive.ops.api import create_app
    except ImportError:
        message = 'the server needs its extra: pip install "redrive[server]"'
        raise fail(message, EXIT_USAGE) from None
    state: CliState = ctx.obj
    app = create_app(state.service(), state.settings)
    from redrive.bootstrap import mask_url

    typer.echo(f"redrive serving {mask_url(state.settings.store_url)} on http://{host}:{port}/",
               err=True)  # fmt: skip
    # Proxy headers are off: a client could otherwise pick the address the log shows.
    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=False,
                server_header=False)  # fmt: skip
