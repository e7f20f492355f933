"""Read commands: ``list``, ``show``, ``stats``, ``groups`` and ``audit``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from redrive.ops.cli._common import (
    CorrelationOpt,
    ErrorTypeOpt,
    GroupOpt,
    HandlerOpt,
    JsonOpt,
    SearchOpt,
    SinceOpt,
    StatusOpt,
    TenantOpt,
    TopicOpt,
    UntilOpt,
    VersionOpt,
    build_filter,
    echo_json,
    handle_errors,
    reader,
    redactor,
    wants_json,
)
from redrive.stores.base import DEFAULT_SORT, SORTS

if TYPE_CHECKING:
    from redrive.redact import Redactor

LimitOpt = Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000, help="Rows to show.")]
CursorOpt = Annotated[
    str | None, typer.Option("--cursor", help="Where the previous page ended (printed there).")
]


def _sort(value: str) -> str:
    if value not in SORTS:
        raise typer.BadParameter(f"expected one of {', '.join(SORTS)}, got {value!r}")
    return value


SortOpt = Annotated[
    str,
    typer.Option(
        "--sort",
        callback=_sort,
        metavar="|".join(SORTS),
        help="created (id order), dead (when it died) or attempts; - in front for descending "
        "(write --sort=-dead). Ties go by id.",
    ),
]


def register(app: typer.Typer) -> None:
    """Add the read commands to ``app``."""
    app.command("list")(list_records)
    app.command("show")(show)
    app.command("stats")(stats)
    app.command("groups")(groups)
    app.command("audit")(audit)


@handle_errors
def list_records(
    ctx: typer.Context,
    status: StatusOpt = None,
    topic: TopicOpt = None,
    handler: HandlerOpt = None,
    error_type: ErrorTypeOpt = None,
    group: GroupOpt = None,
    tenant: TenantOpt = None,
    correlation_id: CorrelationOpt = None,
    version: VersionOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    search: SearchOpt = None,
    limit: LimitOpt = 20,
    cursor: CursorOpt = None,
    sort: SortOpt = DEFAULT_SORT,
    json_output: JsonOpt = False,
) -> None:
    """List dead letters (or other statuses), newest first or in --sort order.

    \b
    Example: redrive list --topic orders.created --since 2h --search "timeout"
             redrive list --status all --sort=-attempts
    """
    where = build_filter(
        status=status,
        topic=topic,
        handler=handler,
        error_type=error_type,
        group=group,
        tenant=tenant,
        correlation_id=correlation_id,
        version=version,
        since=since,
        until=until,
        search=search,
    )
    page = reader(ctx).list(where, limit=limit, cursor=cursor, sort=sort)
    shown = [redactor(ctx).mask(record) for record in page.items]
    if wants_json(ctx, json_output):
        items = [record.to_dict() for record in shown]
        echo_json({"items": items, "next_cursor": page.next_cursor})
        return
    from redrive.ops.cli._render import console, records_table

    out = console()
    if not shown:
        out.print("no records match")
        return
    died = sort.lstrip("-") == "dead"
    out.print(records_table(shown, with_status=len(where.statuses) != 1, died=died))
    if page.next_cursor:
        same = "" if sort == DEFAULT_SORT else f" --sort={sort}"
        out.print(f"more:{same} --cursor {page.next_cursor}")


@handle_errors
def show(
    ctx: typer.Context,
    record_id: Annotated[str, typer.Argument(metavar="ID", help="The dead letter's id.")],
    json_output: JsonOpt = False,
) -> None:
    """Show every field of one dead letter, its payload, traceback and attempt timeline.

    Example: redrive show 0193a0c4-7f1e-7c3a-9d52-5b1e2f3a4b5c
    """
    record = redactor(ctx).mask(reader(ctx).get(record_id))
    if wants_json(ctx, json_output):
        echo_json(record.to_dict())
        return
    from redrive.ops.cli._render import console, show_record

    show_record(console(), record)


@handle_errors
def stats(ctx: typer.Context, json_output: JsonOpt = False) -> None:
    """Counts by topic and status, the oldest dead letter per topic, new in the last 1h/24h.

    Example: redrive stats --json
    """
    result = reader(ctx).stats()
    if wants_json(ctx, json_output):
        from redrive.models import format_time

        echo_json(
            {
                "counts": {t: {s.value: n for s, n in c.items()} for t, c in result.counts.items()},
                "oldest_dead_at": {t: format_time(v) for t, v in result.oldest_dead_at.items()},
                "new_dead_last_hour": dict(result.new_dead_last_hour),
                "new_dead_last_day": dict(result.new_dead_last_day),
            }
        )
        return
    from redrive.ops.cli._render import console, stats_table

    out = console()
    if not result.counts:
        out.print("the store is empty")
        return
    out.print(stats_table(result))


@handle_errors
def groups(
    ctx: typer.Context,
    status: StatusOpt = None,
    topic: TopicOpt = None,
    handler: HandlerOpt = None,
    error_type: ErrorTypeOpt = None,
    version: VersionOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    search: SearchOpt = None,
    limit: LimitOpt = 20,
    json_output: JsonOpt = False,
) -> None:
    """Error groups (one cause each), biggest first: retry or resolve a group at once.

    Example: redrive groups --topic orders.created --since 1d
    """
    where = build_filter(
        status=status,
        topic=topic,
        handler=handler,
        error_type=error_type,
        version=version,
        since=since,
        until=until,
        search=search,
    )
    found = reader(ctx).groups(where, limit=limit)
    if wants_json(ctx, json_output):
        from redrive.models import format_time

        echo_json(
            [
                {
                    "fingerprint": g.fingerprint,
                    "topic": g.topic,
                    "handler": g.handler,
                    "error_type": g.error_type,
                    "count": g.count,
                    "first_seen": format_time(g.first_seen),
                    "last_seen": format_time(g.last_seen),
                    "sample_message": g.sample_message,
                    "sample_id": g.sample_id,
                }
                for g in found
            ]
        )
        return
    from redrive.ops.cli._render import console, groups_table

    out = console()
    if not found:
        out.print("no error groups match")
        return
    out.print(groups_table(found))
    out.print("next: redrive retry --group GROUP --dry-run")


@handle_errors
def audit(
    ctx: typer.Context,
    action: Annotated[
        str | None,
        typer.Option("--action", help="retry, resolve, discard, delete, purge, token, ..."),
    ] = None,
    by: Annotated[str | None, typer.Option("--by", help="Only what this actor did.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="At or after: 2h, 3d or an ISO time.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Before: 30m, 1d or an ISO time.")
    ] = None,
    limit: LimitOpt = 20,
    cursor: CursorOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Who did what, when, to how many records: every change made through redrive.

    \b
    Example: redrive audit --limit 50
             redrive audit --action delete --since 7d --by alice
    """
    from redrive.models import utcnow
    from redrive.ops.cli._common import parse_when
    from redrive.service import AuditQuery

    now = utcnow()
    query = AuditQuery(
        action=action,
        actor=by,
        since=parse_when(since, "--since", now) if since else None,
        until=parse_when(until, "--until", now) if until else None,
    )
    entries, next_cursor = reader(ctx).audit_page(query, limit=limit, cursor=cursor)
    if wants_json(ctx, json_output):
        from redrive.models import format_time

        mask = redactor(ctx)
        items = [
            {
                "id": e.id,
                "at": format_time(e.at),
                "actor": e.actor,
                "action": e.action,
                "count": e.count,
                "detail": _masked(dict(e.detail), mask),
            }
            for e in entries
        ]
        echo_json({"items": items, "next_cursor": next_cursor})
        return
    from redrive.ops.cli._render import audit_table, console

    out = console()
    if not entries:
        out.print("no audit entries" + (" match" if action or by or since or until else ""))
        return
    out.print(audit_table(entries))
    if next_cursor:
        out.print(f"more: --cursor {next_cursor}")


def _masked(detail: dict[str, Any], mask: Redactor) -> dict[str, Any]:
    """An audit detail with the payloads it keeps (a patched replay's) masked."""
    return mask.detail(detail)
