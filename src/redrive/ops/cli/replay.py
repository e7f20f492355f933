"""``redrive retry``: replay dead letters, with a plan first and guard rails while it runs."""

from __future__ import annotations

from pathlib import Path
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
    TenantOpt,
    TopicOpt,
    UntilOpt,
    VersionOpt,
    YesOpt,
    build_filter,
    confirm,
    echo_json,
    handle_errors,
    plural,
    progress_bar,
    selection,
    service,
    wants_json,
)
from redrive.ops.cli._state import EXIT_FAILED, EXIT_NOT_FOUND, fail

if TYPE_CHECKING:
    from redrive.service import ReplayOptions, ReplayReport

DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show the plan (counts, groups, samples); change nothing.")
]
RateOpt = Annotated[
    float | None, typer.Option("--rate", min=0.001, help="Replay at most N records per second.")
]
CanaryOpt = Annotated[
    int, typer.Option("--canary", min=0, help="Replay K first; go on only if all succeed.")
]
AbortOpt = Annotated[
    float | None,
    typer.Option(
        "--abort-on-failure-rate",
        min=0.0,
        max=1.0,
        help="Stop when more than this share (0-1) of replayed records fail again.",
    ),
]
PatchOpt = Annotated[
    str | None,
    typer.Option("--patch", help="JSON merge patch (RFC 7386) for each payload, or @FILE.json."),
]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Include records replayed max_replays times already.")
]
UptoOpt = Annotated[
    str | None,
    typer.Option("--upto", help="Only records up to this id: the bound a --dry-run prints."),
]
RepublishOpt = Annotated[
    bool,
    typer.Option(
        "--republish",
        help="Publish the original messages to their broker subject/topic again instead "
        "(every consumer there sees them); the records are resolved.",
    ),
]
WaitOpt = Annotated[
    str,
    typer.Option("--wait", help="How long to wait for canary/watched records to settle."),
]


def register(app: typer.Typer) -> None:
    """Add ``retry`` to ``app``."""
    app.command("retry")(retry)


@handle_errors
def retry(
    ctx: typer.Context,
    ids: IdsArg = None,
    every: AllOpt = False,
    group: GroupOpt = None,
    topic: TopicOpt = None,
    handler: HandlerOpt = None,
    error_type: ErrorTypeOpt = None,
    tenant: TenantOpt = None,
    correlation_id: CorrelationOpt = None,
    version: VersionOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    search: SearchOpt = None,
    dry_run: DryRunOpt = False,
    rate: RateOpt = None,
    canary: CanaryOpt = 0,
    abort_on_failure_rate: AbortOpt = None,
    patch: PatchOpt = None,
    force: ForceOpt = False,
    wait: WaitOpt = "2m",
    upto: UptoOpt = None,
    republish: RepublishOpt = False,
    yes: YesOpt = False,
    actor: ActorOpt = None,
    note: NoteOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Replay dead letters: schedule them now for the app's (or the worker's) scheduler.

    With --republish, dead letters consumed from NATS or Kafka are published again to
    their original subject or topic instead (with a fresh message id and a
    Redrive-Replay-Of header), and resolved.

    Records that are not dead are skipped (so a retry is idempotent), and bulk replays
    skip records replayed max_replays times already unless --force.

    \b
    Example: redrive retry --group 3f2a9c1d0b7e4a55 --dry-run
             redrive retry --all --topic orders.created --canary 10 --rate 50
    """
    where = build_filter(
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
    ).replace(max_id=upto)
    bulk = selection(ids, every, group, where, "retry")
    merge = _patch(patch)
    options = _options(rate, canary, abort_on_failure_rate, wait)
    dlq = service(ctx, actor)
    as_json = wants_json(ctx, json_output)
    if republish:
        from redrive.ops.cli.republish import republish as send_again

        if merge is not None or canary or rate is not None or abort_on_failure_rate is not None:
            raise BadInput(
                "--republish: --patch, --canary, --rate and --abort-on-failure-rate "
                "apply to scheduled replays only"
            )
        send_again(
            ctx, dlq, ids, bulk, force=force, dry_run=dry_run, yes=yes, note=note, as_json=as_json
        )
        return
    if dry_run or bulk is not None:
        plan = dlq.plan(bulk, force=force) if bulk is not None else _ids_plan(dlq, ids or [])
        if dry_run:
            _print_plan(plan, as_json)
            return
        if plan.count == 0 and not plan.guarded and bulk is not None:
            what = f"in group {group}" if group else "match these filters"
            raise fail(f"nothing matched: no dead letters {what}", EXIT_NOT_FOUND)
        if plan.count == 0:
            _finish(_empty(plan.guarded), as_json)
            return
        confirm(f"Replay {plan.count:,} dead letters?", yes)
        bulk = plan.where
    total = plan.count if bulk is not None else len(ids or [])
    with progress_bar(total, "replaying") as advance:
        report = dlq.replay(
            None if bulk is not None else ids,
            where=bulk,
            options=options,
            patch=merge,
            force=force,
            note=note,
            progress=advance,
        )
    _finish(report, as_json)


def _ids_plan(dlq: Any, ids: list[str]) -> Any:
    from redrive.service import Filter

    return dlq.plan(Filter(ids=tuple(dict.fromkeys(ids))))


def _patch(text: str | None) -> Any:
    """The merge patch given as JSON text or as @FILE; None when not given."""
    if text is None:
        return None
    from redrive._json import NotJSON, loads

    source = "--patch"
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text, source = path.read_text("utf-8"), str(path)
        except OSError as exc:
            raise BadInput(f"--patch: cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise BadInput(f"--patch: {path} is not UTF-8 text (byte {exc.start})") from None
    try:  # strict: no NaN or Infinity, no lone surrogate or NUL, at most 100 levels deep
        patch = loads(text, source)
    except NotJSON as exc:
        raise BadInput(str(exc)) from None
    if not isinstance(patch, dict):
        raise BadInput(f"{source}: a merge patch is a JSON object, such as '{{\"amount\": 10}}'")
    return patch


def _options(rate: float | None, canary: int, abort: float | None, wait: str) -> ReplayOptions:
    from redrive.ops.cli._common import parse_age
    from redrive.service import ReplayOptions

    return ReplayOptions(
        rate=rate, canary=canary, abort_on_failure_rate=abort, wait=parse_age(wait, "--wait")
    )


def _print_plan(plan: Any, as_json: bool) -> None:
    if as_json:
        from redrive.service import filter_to_dict

        echo_json(
            {
                "count": plan.count,
                "by_topic": dict(plan.by_topic),
                "left_out": plan.guarded,
                "groups": [
                    {
                        "fingerprint": g.fingerprint,
                        "topic": g.topic,
                        "count": g.count,
                        "error_type": g.error_type,
                    }
                    for g in plan.groups
                ],
                "samples": [r.id for r in plan.samples],
                "filter": filter_to_dict(plan.where),
                "upto": plan.where.max_id or None,
            }
        )
        return
    from redrive.ops.cli._render import console, show_plan

    out = console()
    show_plan(out, plan)
    if plan.count and plan.where.max_id:
        out.print(
            f"to replay exactly this plan, run it again with: --upto {plan.where.max_id} --yes"
        )


def _empty(guarded: int) -> ReplayReport:
    from redrive.service import ReplayReport

    return ReplayReport(scheduled=0, skipped=guarded)


def _finish(report: ReplayReport, as_json: bool) -> None:
    """Print the outcome; exit 1 if the replay was stopped, 3 if ids were not found."""
    if as_json:
        echo_json(report.to_dict())
    else:
        typer.echo(_summary(report))
    if report.aborted:
        raise typer.Exit(EXIT_FAILED)
    if report.missing:
        raise typer.Exit(EXIT_NOT_FOUND)


def _summary(report: ReplayReport) -> str:
    parts = [f"scheduled {plural(report.scheduled, 'record')} for replay"]
    if report.skipped:
        parts.append(f"{report.skipped:,} skipped (not dead, or replayed too often)")
    if report.missing:
        parts.append(f"{report.missing:,} not found")
    if report.succeeded or report.failed or report.pending:
        parts.append(
            f"{report.succeeded:,} succeeded, {report.failed:,} failed again, "
            f"{report.pending:,} still running"
        )
    line = "; ".join(parts)
    if report.aborted:
        line += f"\nstopped: {report.aborted}; {plural(report.remaining, 'record')} left dead"
    return line
