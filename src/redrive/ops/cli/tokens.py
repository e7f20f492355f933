"""``redrive token create NAME --role operator``, ``redrive token list``, ``redrive token revoke``.

The token is printed once, at creation; the store keeps only its hash.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from redrive.ops.cli._state import EXIT_NOT_FOUND, EXIT_USAGE, CliState, fail

RoleOpt = Annotated[
    str,
    typer.Option("--role", "-r", help="viewer (read), operator (retry/resolve/discard), admin."),
]


def register(app: typer.Typer) -> None:
    """Add the ``token`` commands to ``app``."""
    tokens = typer.Typer(name="token", help="Manage API tokens.", no_args_is_help=True)
    tokens.command("create")(create)
    tokens.command("list")(list_tokens)
    tokens.command("revoke")(revoke)
    app.add_typer(tokens, name="token")


def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Who or what uses the token (shown in the audit).")],
    role: RoleOpt = "viewer",
) -> None:
    """Create an API token and print it (only this once)."""
    from redrive.ops.auth import TokenError, Tokens

    state: CliState = ctx.obj
    try:
        token, info = Tokens(state.service()).create(name, role)
    except TokenError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    if state.json:
        typer.echo(json.dumps({**info.to_dict(), "token": token}))
        return
    typer.echo(token)
    typer.echo(
        f"token {info.name!r} ({info.role.value}) created; it is shown only now, store it safely",
        err=True,
    )


def list_tokens(ctx: typer.Context) -> None:
    """List tokens: name, role, id, when created and last used (never the secret)."""
    from redrive.ops.auth import Tokens

    state: CliState = ctx.obj
    infos = Tokens(state.service()).list()
    if state.json:
        typer.echo(json.dumps([info.to_dict() for info in infos], indent=2))
        return
    if not infos:
        typer.echo("no tokens; create one with: redrive token create NAME --role viewer")
        return
    from redrive.ops.cli._render import console, table

    grid = table("NAME", "ROLE", "ID!", "CREATED!", "LAST USED!")
    for info in infos:
        data = info.to_dict()
        grid.add_row(
            info.name,
            info.role.value,
            info.id,
            (data["created_at"] or "-")[:19].replace("T", " "),
            (data["last_used_at"] or "never")[:19].replace("T", " "),
        )
    console().print(grid)


def revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The token's name (or id).")],
) -> None:
    """Revoke a token: requests with it fail from now on, its console sessions end."""
    from redrive.exceptions import NotFound
    from redrive.ops.auth import Tokens

    state: CliState = ctx.obj
    try:
        info = Tokens(state.service()).revoke(name)
    except NotFound as exc:
        raise fail(str(exc), EXIT_NOT_FOUND) from None
    typer.echo(f"revoked token {info.name!r}")
