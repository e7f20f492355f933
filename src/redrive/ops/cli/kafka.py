"""``redrive kafka ...``: run a Kafka consumer, provision DLQ topics, import DLQ topics,
show DLQ depth.

The brokers, group and topics come from ``[kafka]`` in redrive.toml; the options here
override it. confluent-kafka loads only inside the commands (``redrive[kafka]``).
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
    plural,
    printable,
    state_of,
    wants_json,
)

if TYPE_CHECKING:
    from redrive.config import Settings
    from redrive.transports.kafka.settings import KafkaSettings

kafka_app = typer.Typer(
    name="kafka",
    help="Kafka: run a consumer, provision and import DLQ topics, show their depth.",
    no_args_is_help=True,
)

BootstrapOpt = Annotated[
    str | None,
    typer.Option("--bootstrap-servers", "-b", help="host:port[,host:port] (else [kafka])."),
]
TopicsOpt = Annotated[
    list[str] | None,
    typer.Option("--topic", "-t", help="A source topic (repeatable; else [kafka] topics)."),
]


def register(app: typer.Typer) -> None:
    """Add the ``kafka`` command group to ``app``."""
    app.add_typer(kafka_app, name="kafka")


def _kafka(ctx: typer.Context) -> KafkaSettings:
    try:
        from redrive.transports.kafka.settings import KafkaSettings
    except ImportError as exc:  # confluent-kafka is missing: the message says what to do
        raise BadInput(str(exc)) from None
    return KafkaSettings.of(state_of(ctx).settings)


def _config(kafka: KafkaSettings, bootstrap: str | None) -> dict[str, Any]:
    servers = bootstrap or kafka.bootstrap_servers
    if not servers:
        raise BadInput("--bootstrap-servers: give the brokers (or bootstrap_servers in [kafka])")
    return {"bootstrap.servers": servers, **kafka.client}


def _source_topics(kafka: KafkaSettings, topics: list[str] | None) -> list[str]:
    chosen = list(topics or ()) or list(kafka.topics) or sorted(kafka.dlq_topics)
    if not chosen:
        raise BadInput("--topic: name the source topics (or topics in [kafka])")
    return chosen


@kafka_app.command("run")
@handle_errors
def run(
    ctx: typer.Context,
    app_path: Annotated[
        str,
        typer.Option("--app", help="module:attr of a KafkaConsumer, or a function returning one."),
    ],
) -> None:
    """Consume until Ctrl-C or SIGTERM; the consumer's scheduler runs retries and replays.

    The function form may take the settings: def make_consumer(settings) -> KafkaConsumer.

    Example: redrive kafka run --app myshop.events:consumer
    """
    import asyncio

    consumer = load_consumer(app_path, state_of(ctx).settings)
    asyncio.run(_serve(consumer))


def load_consumer(path: str, settings: Settings, option: str = "--app") -> Any:
    """Import ``module:attr``; call it (with the settings if it takes one) if it is a factory."""
    import inspect

    target = import_target(path, option)
    if callable(target) and not hasattr(target, "bus"):
        takes_settings = bool(inspect.signature(target).parameters)
        target = target(settings) if takes_settings else target()
    if not hasattr(target, "bus") or not hasattr(target, "topics"):
        raise BadInput(f"{option}: {path} is not a KafkaConsumer (or a function returning one)")
    return target


async def _serve(consumer: Any) -> None:
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with consumer:
        topics = ", ".join(printable(t) for t in consumer.topics)
        typer.echo(f"consuming {topics} as group {printable(consumer.group)}", err=True)
        await stop.wait()
    typer.echo("consumer stopped", err=True)


@kafka_app.command("provision")
@handle_errors
def provision(
    ctx: typer.Context,
    topics: TopicsOpt = None,
    bootstrap: BootstrapOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Create or update the {topic}.dlq topics as [kafka.dlq] says; idempotent.

    Example: redrive kafka provision --topic orders.created
    """
    import asyncio

    from redrive.transports.kafka.provision import provision as apply

    kafka = _kafka(ctx)
    specs = [kafka.dlq_spec(topic) for topic in _source_topics(kafka, topics)]
    changes = asyncio.run(apply(_config(kafka, bootstrap), specs, dry_run=dry_run))
    if wants_json(ctx, json_output):
        echo_json([{"topic": c.topic, "action": c.action, "detail": c.detail} for c in changes])
    else:
        for change in changes:
            typer.echo(printable(change.describe()))
        if all(change.action == "unchanged" for change in changes):
            typer.echo("nothing to change")
    if any(change.action in ("refused", "failed") for change in changes):
        raise typer.Exit(1)


@kafka_app.command("import")
@handle_errors
def import_(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="The DLQ topic to read.")],
    bootstrap: BootstrapOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Read a DLQ topic (redrive's, Kafka Connect's or Spring Kafka's) into the store.

    Idempotent and resumable: a second run reads only what is new.

    Example: redrive kafka import orders.DLT
    """
    from redrive.transports.kafka.importer import import_topic

    kafka = _kafka(ctx)
    result = import_topic(_config(kafka, bootstrap), topic, state_of(ctx).store)
    if wants_json(ctx, json_output):
        echo_json({"read": result.read, "imported": result.imported, **result.by_format})
        return
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(result.by_format.items()))
    typer.echo(
        f"read {plural(result.read, 'record')} from {printable(topic)}, "
        f"imported {result.imported}" + (f" ({kinds})" if kinds else "")
    )


@kafka_app.command("depth")
@handle_errors
def depth(
    ctx: typer.Context,
    topics: TopicsOpt = None,
    bootstrap: BootstrapOpt = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if a topic is at its critical threshold.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Records held by each DLQ topic, against its warn and critical thresholds.

    Example: redrive kafka depth --check
    """
    from redrive.transports.kafka.depth import check as measure

    kafka = _kafka(ctx)
    specs = [kafka.dlq_spec(topic) for topic in _source_topics(kafka, topics)]
    depths = measure(_config(kafka, bootstrap), specs)
    if wants_json(ctx, json_output):
        echo_json([d.to_dict() for d in depths])
    else:
        for d in depths:
            shown = "missing" if d.depth is None else f"{d.depth:,}"
            typer.echo(f"{printable(d.topic)}  {shown}  {d.level}")
    if check and any(d.level == "critical" for d in depths):
        raise typer.Exit(1)
