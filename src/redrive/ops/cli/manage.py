"""State changes and clean-up: ``resolve``, ``discard``, ``delete`` and ``purge``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from redrive.ops.cli._common import (
    ActorOpt,
    AllOpt,
    BadInput,
    CorrelationOpt,
    ErrorTypeOpt,
    GroupOpt,
    HandlerOpt,
    IdsArg,
    JsonOpt,
    NoteOpt,
    SearchOpt,
    SinceOpt,
    StatusOpt,
    TenantOpt,
    TopicOpt,
    UntilOpt,
    VersionOpt,
    YesOpt,
    build_filter,
    confirm,
    echo_json,
    handle_errors,
    parse_age,
    parse_statuses,
    plural,
    progress_bar,
    selection,
    service,
    state_of,
    wants_json,
)
from redrive.ops.cli._state import EXIT_NOT_FOUND

if TYPE_CHECKING:
    from redrive.service import DeadLetterQueue, Filter, Result

OlderThanOpt = Annotated[
    str | None, typer.Option("--older-than", help="Last changed longer ago than this: 30d, 12h.")
]


def register(app: typer.Typer) -> None:
    """Add the state-change and clean-up commands to ``app``."""
    app.command("resolve")(resolve)
    app.command("discard")(discard)
    app.command("delete")(delete)
    app.command("purge")(purge)


def _change_command(verb: str, doc: str) -> Callable[..., None]:
    """One command per state change: the same selection options, a different verb."""

    def command(
        ctx: typer.Context,
        ids: IdsArg = None,
        every: AllOpt = False,
        group: GroupOpt = None,
        status: StatusOpt = None,
        topic: TopicOpt = None,
        handler: HandlerOpt = None,
        error_type: ErrorTypeOpt = None,
        tenant: TenantOpt = None,
        correlation_id: CorrelationOpt = None,
        version: VersionOpt = None,
        since: SinceOpt = None,
        until: UntilOpt = None,
        search: SearchOpt = None,
        yes: YesOpt = False,
        actor: ActorOpt = None,
        note: NoteOpt = None,
        json_output: JsonOpt = False,
    ) -> None:
        where = build_filter(**_criteria(locals()))
        _change(
            ctx, verb, ids, selection(ids, every, group, where, verb), yes, actor, note, json_output
        )

    command.__name__ = command.__qualname__ = verb
    command.__doc__ = doc
    return handle_errors(command)


resolve = _change_command(
    "resolve",
    """Mark dead (or scheduled) records as handled by hand.

    Example: redrive resolve --group 3f2a9c1d0b7e4a55 --note "refunded by support"
    """,
)
discard = _change_command(
    "discard",
    """Mark dead (or scheduled) records as not to be processed (kept for the record).

    Example: redrive discard --all --topic test.events --yes
    """,
)
delete = _change_command(
    "delete",
    """Delete records for good (dead ones unless --status says otherwise).

    Example: redrive delete 0193a0c4-7f1e-7c3a-9d52-5b1e2f3a4b5c --yes
    """,
)


def _criteria(values: dict[str, Any]) -> dict[str, Any]:
    names = (
        "status",
        "topic",
        "handler",
        "error_type",
        "group",
        "tenant",
        "correlation_id",
        "version",
        "since",
        "until",
        "search",
    )
    return {name: values[name] for name in names}


def _change(
    ctx: typer.Context,
    verb: str,
    ids: list[str] | None,
    where: Filter | None,
    yes: bool,
    actor: str | None,
    note: str | None,
    json_output: bool,
) -> None:
    dlq = service(ctx, actor)
    if where is not None:
        where = dlq.snapshot(where)
        total = dlq.count(where)
    else:
        total = len(set(ids or []))
    if total and (verb == "delete" or where is not None):
        confirm(f"{verb.capitalize()} {plural(total, 'record')}?", yes)
    method = getattr(dlq, verb)
    with progress_bar(total, verb) as advance:
        result = method(ids if where is None else None, where=where, note=note, progress=advance)
    _report(ctx, verb, result, json_output)


def _report(ctx: typer.Context, verb: str, result: Result, json_output: bool) -> None:
    if wants_json(ctx, json_output):
        echo_json(
            {
                "action": verb,
                "matched": result.matched,
                "changed": result.changed,
                "skipped": result.skipped,
                "missing": result.missing,
            }
        )
    else:
        past = {"resolve": "resolved", "discard": "discarded"}.get(verb, verb + "d")
        line = f"{past} {plural(result.changed, 'record')}"
        if result.skipped:
            line += f"; {result.skipped:,} skipped (status does not allow it)"
        if result.missing:
            line += f"; {result.missing:,} not found"
        typer.echo(line)
    if result.missing:
        raise typer.Exit(EXIT_NOT_FOUND)


@handle_errors
def purge(
    ctx: typer.Context,
    older_than: OlderThanOpt = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="resolved,discarded (default); dead must be asked for."),
    ] = None,
    topic: TopicOpt = None,
    apply_retention: Annotated[
        bool,
        typer.Option("--apply-retention", help="Purge each topic by its configured retention."),
    ] = False,
    yes: YesOpt = False,
    actor: ActorOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Delete old records: resolved and discarded ones by default.

    \b
    Example: redrive purge --older-than 30d
             redrive purge --apply-retention --yes
    """
    dlq = service(ctx, actor)
    if apply_retention:
        _retention(ctx, dlq, yes, json_output)
        return
    if older_than is None:
        raise BadInput("purge: give --older-than DURATION (such as 30d) or --apply-retention")
    age = parse_age(older_than, "--older-than")
    statuses = parse_statuses(status, ("resolved", "discarded"))
    if not statuses:
        raise BadInput("purge: --status all is not allowed; name the statuses")
    where = build_filter(status=status or "resolved,discarded", topic=topic)
    total = dlq.count(where.replace(updated_before=dlq.clock.now() - age))
    confirm(f"Purge {plural(total, 'record')} ({', '.join(statuses)})?", yes)
    with progress_bar(total, "purge") as advance:
        result = dlq.purge(age, statuses=statuses, topic=topic, progress=advance)
    _report(ctx, "purge", result, json_output)


def _retention(ctx: typer.Context, dlq: DeadLetterQueue, yes: bool, json_output: bool) -> None:
    settings = state_of(ctx).settings
    retention = {t: s.retention for t, s in settings.topics.items() if s.retention is not None}
    if not retention:
        raise BadInput("purge --apply-retention: no topic in the config sets a retention")
    listed = ", ".join(f"{topic} {age}" for topic, age in retention.items())
    confirm(f"Purge by retention ({listed})?", yes)
    results = dlq.apply_retention(retention)
    if wants_json(ctx, json_output):
        echo_json({topic: result.changed for topic, result in results.items()})
        return
    for topic, result in results.items():
        typer.echo(f"{topic}: purged {plural(result.changed, 'record')}")
