"""``redrive nats``: run a JetStream consumer, provision its streams, import a DLQ stream,
see DLQ depths. nats-py loads only inside these commands (``pip install "redrive[nats]"``).

Options override the ``[nats]`` table of redrive.toml.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from redrive.ops.cli._common import (
    BadInput,
    JsonOpt,
    echo_json,
    handle_errors,
    import_target,
    plural,
    printable,
    service,
    state_of,
    wants_json,
)

if TYPE_CHECKING:
    from redrive.config import Settings
    from redrive.transports.nats.options import NatsOptions

nats_app = typer.Typer(
    name="nats",
    help="NATS JetStream: run a consumer, provision streams, import a DLQ stream.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

ServersOpt = Annotated[
    list[str] | None,
    typer.Option("--servers", help="NATS URL (repeat for several); default from [nats]."),
]
StreamOpt = Annotated[str | None, typer.Option("--stream", help="The source stream.")]
DurableOpt = Annotated[str | None, typer.Option("--durable", help="The durable consumer.")]
AppOpt = Annotated[
    str | None,
    typer.Option(
        "--app", help="module:attr of a JetStreamConsumer, or of a function returning one."
    ),
]


def register(app: typer.Typer) -> None:
    """Add the ``nats`` group to ``app``."""
    app.add_typer(nats_app)


def options_of(
    settings: Settings, servers: list[str] | None, stream: str | None, durable: str | None
) -> NatsOptions:
    """The ``[nats]`` table with the command's options applied."""
    transport = _transport()
    options: NatsOptions = transport.NatsOptions.from_settings(
        settings, servers=tuple(servers) if servers else None, stream=stream, durable=durable
    )
    return options


def _transport() -> Any:
    try:
        import redrive.transports.nats as transport
    except ImportError as exc:
        raise BadInput(str(exc)) from None
    return transport


def load_consumer(path: str, settings: Settings, option: str = "--app") -> Any:
    """Import ``module:attr``; call it (with the settings if it takes one) when it is a
    factory; it must give a ``JetStreamConsumer``."""
    import inspect

    transport = _transport()
    target = import_target(path, option)
    if callable(target) and not isinstance(target, transport.JetStreamConsumer):
        target = target(settings) if inspect.signature(target).parameters else target()
    if not isinstance(target, transport.JetStreamConsumer):
        raise BadInput(f"{option}: {path} is not a JetStreamConsumer (or a function returning one)")
    return target


@nats_app.command("run")
@handle_errors
def run(
    ctx: typer.Context,
    app_path: Annotated[
        str,
        typer.Option(
            "--app", help="module:attr of a JetStreamConsumer, or of a function returning one."
        ),
    ],
) -> None:
    """Run a JetStreamConsumer until Ctrl-C or SIGTERM (messages in flight finish first).

    Example: redrive nats run --app myshop.billing:consumer
    """
    import asyncio

    consumer = load_consumer(app_path, state_of(ctx).settings)
    asyncio.run(_serve(consumer))


async def _serve(consumer: Any) -> None:
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with consumer:
        o = consumer.options
        typer.echo(
            f"consuming {o.stream}/{o.durable}: {plural(len(consumer.handlers()), 'handler')}, "
            f"store {consumer.store.url}",
            err=True,
        )
        await stop.wait()
    typer.echo(f"stopped: {_stats_line(consumer.stats)}", err=True)


def _stats_line(stats: dict[str, Any]) -> str:
    keys = ("processed", "acked", "retries", "scheduled", "dead", "crash_loops")
    return ", ".join(f"{k} {stats[k]}" for k in keys)


@nats_app.command("provision")
@handle_errors
def provision(
    ctx: typer.Context,
    servers: ServersOpt = None,
    stream: StreamOpt = None,
    durable: DurableOpt = None,
    app_path: AppOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the changes; make none.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Create or update the DLQ stream, the advisory stream and the durable consumer.

    Updates start from the server's current config, so fields redrive does not own are
    kept. max_deliver defaults to the policies' attempts + 3 (--app reads the handlers'
    policies; without it, the config's).

    Example: redrive nats provision --stream ORDERS --durable billing --dry-run
    """
    import asyncio

    settings = state_of(ctx).settings
    if app_path:
        consumer = load_consumer(app_path, settings)
        options, attempts = consumer.options, consumer.max_attempts()
        options = options.replace(
            servers=tuple(servers) if servers else None, stream=stream, durable=durable
        )
    else:
        options, attempts = options_of(settings, servers, stream, durable), _attempts(settings)
    if not options.stream or not options.durable:
        raise BadInput("provision: give --stream and --durable (or set them in [nats])")
    changes = asyncio.run(_provision(options, attempts, dry_run))
    if wants_json(ctx, json_output):
        echo_json(
            [
                {
                    "kind": c.kind,
                    "name": c.name,
                    "action": c.action,
                    "fields": {k: [str(a), str(b)] for k, (a, b) in c.fields.items()},
                }
                for c in changes
            ]
        )
        return
    for change in changes:
        typer.echo(
            printable(
                ("would " if dry_run and change.action != "unchanged" else "") + change.describe()
            )
        )
    if all(change.action == "unchanged" for change in changes):
        typer.echo("nothing to change")


def _attempts(settings: Settings) -> int:
    from redrive.policy import RetryPolicy

    policies = [settings.policy or RetryPolicy(), *settings.handlers.values()]
    policies += [t.policy for t in settings.topics.values() if t.policy is not None]
    return max(p.max_attempts for p in policies)


async def _provision(options: NatsOptions, attempts: int, dry_run: bool) -> list[Any]:
    from redrive.transports.nats.connection import connect
    from redrive.transports.nats.provision import provision as apply

    nc = await connect(options.servers, name="redrive provision", reconnect=False)
    try:
        return await apply(nc.jetstream(), options, max_attempts=attempts, dry_run=dry_run)
    finally:
        await nc.drain()


@nats_app.command("import")
@handle_errors
def import_stream(
    ctx: typer.Context,
    stream: Annotated[str, typer.Argument(help="The DLQ stream to read, such as ORDERS_DLQ.")],
    servers: ServersOpt = None,
    prefix: Annotated[
        str, typer.Option("--prefix", help="DLQ subject prefix taken off subjects.")
    ] = "dlq",
    json_output: JsonOpt = False,
) -> None:
    """Read a DLQ stream's messages into the store as dead letters (idempotent).

    redrive's own copies keep their record ids; other messages (such as an older
    EventSubscriber's, metadata in headers or in a JSON envelope) get ids derived from
    (stream, sequence), so running it again adds nothing. The stream is left as it is.

    Example: redrive nats import SAHOOL_DLQ
    """
    import asyncio

    options = options_of(state_of(ctx).settings, servers, None, None)
    with tempfile.TemporaryDirectory(prefix="redrive-nats-import-") as tmp:
        path = Path(tmp) / f"{stream}.jsonl"
        read = asyncio.run(_read(options, stream, prefix, path))
        result = service(ctx).import_(path, note=f"from NATS stream {stream}")
    if wants_json(ctx, json_output):
        echo_json(
            {"stream": stream, "read": read, "added": result.changed, "skipped": result.skipped}
        )
        return
    typer.echo(
        f"read {plural(read, 'message')} from {printable(stream)}: "
        f"{result.changed:,} added, {result.skipped:,} already in the store"
    )


async def _read(options: NatsOptions, stream: str, prefix: str, path: Path) -> int:
    import json

    from nats.js.errors import NotFoundError

    from redrive.transports.nats.connection import connect
    from redrive.transports.nats.importer import read_stream

    nc = await connect(options.servers, name="redrive import", reconnect=False)
    count = 0
    try:
        with path.open("w", encoding="utf-8") as out:
            async for record in read_stream(nc.jetstream(), stream, prefix=prefix):
                out.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
                count += 1
    except NotFoundError:
        raise BadInput(f"import: no stream {stream!r} on the server") from None
    finally:
        await nc.drain()
    return count


@nats_app.command("dlq")
@handle_errors
def dlq_depth(
    ctx: typer.Context,
    streams: Annotated[
        list[str] | None, typer.Argument(help="DLQ streams (default: every *_DLQ stream).")
    ] = None,
    servers: ServersOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Messages waiting in DLQ streams, and the oldest one's time.

    Example: redrive nats dlq ORDERS_DLQ --json
    """
    import asyncio

    options = options_of(state_of(ctx).settings, servers, None, None)
    depths = asyncio.run(_depths(options, streams or []))
    if wants_json(ctx, json_output):
        echo_json(depths)
        return
    if not depths:
        typer.echo("no DLQ streams")
    for row in depths:
        typer.echo(
            f"{printable(row['stream'])}: {plural(row['messages'], 'message')}"
            + (f", oldest {row['oldest']}" if row["oldest"] else "")
        )


async def _depths(options: NatsOptions, streams: list[str]) -> list[dict[str, Any]]:
    from redrive.transports.nats.connection import connect
    from redrive.transports.nats.monitor import dlq_depths

    nc = await connect(options.servers, name="redrive dlq", reconnect=False)
    try:
        return await dlq_depths(nc.jetstream(), streams)
    finally:
        await nc.drain()
