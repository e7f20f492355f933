"""``redrive migrate``: bring the store's schema up to date (PostgreSQL or SQLite).

Stores migrate themselves when they open unless told not to (``migrate=False``); this
command is for deployments that run schema changes as a separate step, with a role that
may create tables, before the application starts.
"""

from __future__ import annotations

from typing import Annotated

import typer

from redrive.ops.cli._common import JsonOpt, echo_json, handle_errors, state_of, wants_json


def register(app: typer.Typer) -> None:
    """Add ``migrate`` to ``app``."""
    app.command("migrate")(migrate)


@handle_errors
def migrate(
    ctx: typer.Context,
    json_output: JsonOpt = False,
    schema: Annotated[
        str | None,
        typer.Option("--schema", help="PostgreSQL schema (default: ?schema= or redrive)."),
    ] = None,
) -> None:
    """Apply every pending schema migration to the store, and print the version reached.

    Safe to run from several processes at once (they take turns on a lock).

    Example: redrive --store postgresql://app@db/app migrate --schema dlq
    """
    from redrive.bootstrap import open_store

    url = state_of(ctx).settings.store_url
    options = {"schema": schema} if schema else {}
    store = open_store(url, migrate=False, **options)
    try:
        version = store.migrate()
    finally:
        store.close()
    where = getattr(store, "schema", None)
    if wants_json(ctx, json_output):
        echo_json({"store": store.url, "schema": where, "version": version})
        return
    suffix = f" (schema {where})" if where else ""
    typer.echo(f"{store.url}{suffix}: schema at version {version}")
