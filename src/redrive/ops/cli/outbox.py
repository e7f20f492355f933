"""``redrive outbox ...``: run the outbox dispatcher and manage dead outbox events.

``run`` delivers pending events to an app's EventBus (``--bus``) or to a publisher
callable (``--publisher``); ``dead``, ``count``, ``retry``, ``cleanup`` and ``archive``
are the repository operations for operators.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Annotated, Any

import typer

from redrive.ops.cli._common import (
    BadInput,
    JsonOpt,
    echo_json,
    handle_errors,
    import_target,
    parse_age,
    parse_when,
    plural,
    printable,
    state_of,
    wants_json,
)

if TYPE_CHECKING:
    from redrive.outbox import Outbox

outbox_app = typer.Typer(
    name="outbox",
    help="Run the transactional outbox and manage its dead events.",
    no_args_is_help=True,
)

AggregateOpt = Annotated[str | None, typer.Option("--aggregate-type", help="Only this type.")]
EventTypeOpt = Annotated[str | None, typer.Option("--event-type", help="Only this topic.")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="Dead since: 2h, 3d or ISO time.")]


def register(app: typer.Typer) -> None:
    """Add the ``outbox`` command group to ``app``."""
    app.add_typer(outbox_app, name="outbox")


def _outbox(ctx: typer.Context, **options: Any) -> Outbox:
    from redrive.outbox import Outbox

    state = state_of(ctx)
    return Outbox(state.store, settings=state.settings, **options)


@outbox_app.command("run")
@handle_errors
def run(
    ctx: typer.Context,
    bus: Annotated[
        str | None, typer.Option("--bus", help="module:attr of an EventBus (or a factory).")
    ] = None,
    publisher: Annotated[
        str | None, typer.Option("--publisher", help="module:attr of a publish(event) callable.")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 100,
    ordering: Annotated[str, typer.Option("--ordering", help="none, or key.")] = "none",
    once: Annotated[bool, typer.Option("--once", help="Dispatch one batch and exit.")] = False,
    hold: Annotated[
        str | None,
        typer.Option(
            "--hold",
            help="PostgreSQL: how long a batch may keep its rows locked in its transaction "
            "before it falls back to a lease (e.g. 10s; 0 = always lease).",
        ),
    ] = None,
) -> None:
    """Deliver pending outbox events until Ctrl-C or SIGTERM.

    With --bus, the bus's scheduler also runs (its handlers' retries and replays).

    Example: redrive outbox run --bus myshop.events:bus
    """
    import asyncio

    if (bus is None) == (publisher is None):
        raise BadInput("outbox run: give --bus module:attr or --publisher module:attr")
    if ordering not in ("none", "key"):
        raise BadInput(f"--ordering: expected none or key, got {ordering!r}")
    target: dict[str, Any] = {}
    if bus is not None:
        from redrive.ops.cli.worker import load_bus

        target["bus"] = load_bus(bus, state_of(ctx).settings, "--bus")
    else:
        target["publisher"] = _load_callable(str(publisher))
    if hold is not None:
        target["hold"] = parse_age(hold, "--hold")
    outbox = _outbox(ctx, batch_size=batch_size, ordering=ordering, **target)
    try:
        asyncio.run(_serve(outbox, once))
    finally:
        outbox.close()


def _load_callable(path: str) -> Any:
    target = import_target(path, "--publisher")
    if not callable(target):
        raise BadInput(f"--publisher: {path} is not callable")
    return target


async def _serve(outbox: Outbox, once: bool) -> None:
    import asyncio
    import signal

    bus = outbox.bus
    async with contextlib.AsyncExitStack() as stack:
        if bus is not None:
            await stack.enter_async_context(bus)
        if once:
            count = await outbox.dispatch()
            typer.echo(f"dispatched {plural(count, 'event')}", err=True)
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        typer.echo(f"outbox dispatcher ready on {outbox.store.url}", err=True)
        await outbox.run(stop=stop)
    typer.echo("outbox dispatcher stopped", err=True)


@outbox_app.command("dead")
@handle_errors
def dead(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 50,
    cursor: Annotated[int | None, typer.Option("--cursor", help="next_cursor of a page.")] = None,
    aggregate_type: AggregateOpt = None,
    event_type: EventTypeOpt = None,
    since: SinceOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """List dead outbox events, newest first."""
    from redrive.models import utcnow

    when = parse_when(since, "--since", utcnow()) if since else None
    outbox = _outbox(ctx)
    try:
        page = outbox.fetch_dead_events(limit, cursor, aggregate_type, event_type, when)
    finally:
        outbox.close()
    if wants_json(ctx, json_output):
        echo_json({"items": [e.to_dict() for e in page.items], "next_cursor": page.next_cursor})
        return
    if not page.items:
        typer.echo(
            "no dead outbox events" + (" match" if since or aggregate_type or event_type else "")
        )
        return
    for e in page.items:
        aggregate = f"{e.aggregate_type or '-'}:{e.aggregate_id or '-'}"
        line = f"{e.id}\t{e.topic}\t{aggregate}\t{e.attempts}\t{e.last_error or ''}"
        typer.echo(printable(line, multiline=True))  # record text never reaches a tty raw
    if page.next_cursor is not None:
        typer.echo(f"more: --cursor {page.next_cursor}", err=True)


@outbox_app.command("count")
@handle_errors
def count(
    ctx: typer.Context,
    aggregate_type: AggregateOpt = None,
    event_type: EventTypeOpt = None,
    since: SinceOpt = None,
) -> None:
    """Print how many outbox events are dead."""
    from redrive.models import utcnow

    when = parse_when(since, "--since", utcnow()) if since else None
    outbox = _outbox(ctx)
    try:
        typer.echo(str(outbox.count_dead_events(aggregate_type, event_type, when)))
    finally:
        outbox.close()


@outbox_app.command("retry")
@handle_errors
def retry(
    ctx: typer.Context,
    ids: Annotated[list[int], typer.Argument(help="Dead outbox event ids.", show_default=False)],
) -> None:
    """Put dead outbox events back to pending, with fresh attempts."""
    outbox = _outbox(ctx)
    try:
        if len(ids) == 1:
            outbox.retry_dead_event(ids[0])
            changed = 1
        else:
            changed = outbox.retry_dead_events_batch(ids)
    finally:
        outbox.close()
    typer.echo(f"re-queued {plural(changed, 'event')} of {len(ids)}")


@outbox_app.command("cleanup")
@handle_errors
def cleanup(
    ctx: typer.Context,
    older_than: Annotated[str, typer.Option("--older-than", help="Dead for longer: 30d.")] = "30d",
) -> None:
    """Delete dead outbox events that went dead longer ago than --older-than (whole days)."""
    days = parse_age(older_than, "--older-than").days
    outbox = _outbox(ctx)
    try:
        deleted = outbox.cleanup_old_dead_events(days)
    finally:
        outbox.close()
    typer.echo(f"deleted {plural(deleted, 'dead event')}")


@outbox_app.command("archive")
@handle_errors
def archive(
    ctx: typer.Context,
    older_than: Annotated[str, typer.Option("--older-than", help="Delivered before: 7d.")] = "7d",
) -> None:
    """Move delivered events older than --older-than to redrive_outbox_archive."""
    age = parse_age(older_than, "--older-than")
    outbox = _outbox(ctx)
    try:
        moved = outbox.archive(age)
    finally:
        outbox.close()
    typer.echo(f"archived {plural(moved, 'event')}")
