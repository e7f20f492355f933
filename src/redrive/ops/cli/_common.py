"""What the command modules share: filter options, parsing of times and statuses,
confirmation, progress bars, JSON output and the mapping of errors to exit codes.

Only ``typer`` loads with this module; Rich and redrive's core load inside the helpers
that need them, so ``redrive --help`` stays fast.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

from redrive.ops.cli._state import EXIT_FAILED, EXIT_USAGE, CliState, exit_code, fail

if TYPE_CHECKING:
    from redrive.models import Status
    from redrive.redact import Redactor
    from redrive.service import DeadLetterQueue, Filter

P = ParamSpec("P")
R = TypeVar("R")

STATUS_NAMES = ("scheduled", "retrying", "dead", "resolved", "discarded")

# -- options shared by several commands (Typer reads them from the signatures) ----------
StatusOpt = Annotated[
    str | None,
    typer.Option(
        "--status",
        help="dead (default), scheduled, retrying, resolved, discarded; a comma list, or all.",
    ),
]
TopicOpt = Annotated[str | None, typer.Option("--topic", "-t", help="Only this topic.")]
HandlerOpt = Annotated[str | None, typer.Option("--handler", help="Only this handler.")]
ErrorTypeOpt = Annotated[
    str | None, typer.Option("--error-type", help="Only this exception type (e.g. KeyError).")
]
GroupOpt = Annotated[
    str | None, typer.Option("--group", "-g", help="Only this error group (fingerprint).")
]
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="Only this tenant id.")]
CorrelationOpt = Annotated[
    str | None, typer.Option("--correlation-id", help="Only this correlation id.")
]
VersionOpt = Annotated[
    str | None, typer.Option("--version", help="Only records from this app version.")
]
SinceOpt = Annotated[
    str | None,
    typer.Option("--since", help="Created at or after: 2h, 3d or 2026-11-01T00:00Z."),
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help="Created before: 30m, 1d or an ISO time.")
]
SearchOpt = Annotated[
    str | None, typer.Option("--search", "-s", help="Text in the error message or payload.")
]
AllOpt = Annotated[bool, typer.Option("--all", help="Every record that matches the filters.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
ActorOpt = Annotated[
    str | None, typer.Option("--actor", help="Who is acting, for the audit trail.")
]
NoteOpt = Annotated[str | None, typer.Option("--note", help="Why, for the audit trail.")]
IdsArg = Annotated[list[str] | None, typer.Argument(help="Dead letter ids.", show_default=False)]


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn redrive's errors and bad values into one-line messages and exit codes, the
    same under the ``redrive`` script and under Typer's test runner."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from redrive.exceptions import RedriveError

        try:
            return fn(*args, **kwargs)
        except BadInput as exc:
            raise fail(printable(str(exc)), EXIT_USAGE) from None
        except RedriveError as exc:
            raise fail(printable(str(exc)), exit_code(exc)) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None

    return wrapper


class BadInput(ValueError):
    """A value given on the command line is not valid (exit code 2)."""


def state_of(ctx: typer.Context) -> CliState:
    """The global options' state."""
    state: CliState = ctx.obj
    return state


def wants_json(ctx: typer.Context, flag: bool) -> bool:
    """``--json`` given before or after the command name."""
    return flag or state_of(ctx).json


def service(ctx: typer.Context, actor: str | None = None) -> DeadLetterQueue:
    """The service on the configured store, acting as ``actor`` (else ``--actor``, else
    the OS user)."""
    dlq = state_of(ctx).service()
    if actor:
        dlq.actor = actor
    return dlq


def reader(ctx: typer.Context) -> DeadLetterQueue:
    """The service for a command that only reads: a SQLite store that does not exist is
    refused (a typo must not leave a new, empty store behind and report it empty)."""
    problem = missing_store(state_of(ctx).settings.store_url)
    if problem:
        raise BadInput(problem)
    return service(ctx)


def missing_store(url: str) -> str | None:
    """Why ``url`` names a SQLite file that does not exist (with a hint), or None."""
    from pathlib import Path

    prefix = "sqlite:///"
    if not url.startswith(prefix) or url[len(prefix) :] in ("", ":memory:"):
        return None
    path = url[len(prefix) :]
    if Path(path).expanduser().exists():
        return None
    hint = "pass --store (or REDRIVE_STORE_URL) or run from the app's directory"
    if not path.startswith("/"):
        hint += f"; for an absolute path use four slashes: sqlite:////{path.lstrip('./')}"
    return f"no store at {path}: {hint}"


def redactor(ctx: typer.Context) -> Redactor:
    """Masks the fields the config's top-level ``redact = [...]`` list names."""
    return state_of(ctx).settings.redactor()


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON. JSON escapes C0 control characters; C1 ones and
    DEL are escaped too (``\\u009b``), so no value can drive the terminal."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    typer.echo(_C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


_C1 = re.compile("[\x7f-\x9f]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str, *, multiline: bool = False) -> str:
    """``text`` with C0 and C1 control characters and DEL shown as ``\\xNN``, so text read
    from a record (or a file) cannot send escape sequences to the terminal. ``multiline``
    keeps newlines and tabs (tracebacks, pretty-printed JSON)."""
    pattern = _CONTROL_BUT_LINES if multiline else _CONTROL
    return pattern.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


# -- parsing ------------------------------------------------------------------------------
def parse_statuses(text: str | None, default: tuple[str, ...] = ("dead",)) -> tuple[Status, ...]:
    """``dead``, ``dead,resolved`` or ``all`` (every status: an empty selection)."""
    from redrive.models import Status

    names = default if text is None else tuple(p.strip() for p in text.split(",") if p.strip())
    if names == ("all",):
        return ()
    unknown = [name for name in names if name not in STATUS_NAMES]
    if unknown or not names:
        raise BadInput(f"--status: expected {', '.join(STATUS_NAMES)} or all, got {text!r}")
    return tuple(Status(name) for name in names)


MAX_AGE_DAYS = 365_000
"""The longest duration an option takes (about 1000 years): anything longer is a typo, and
``now - age`` stays a valid time."""


def parse_when(text: str, option: str, now: datetime) -> datetime:
    """A duration ago (``2h``, ``3d``) or an ISO-8601 time (``2026-11-01T00:00Z``)."""
    from redrive.models import parse_time

    try:
        return now - parse_age(text, option)
    except _NotADuration:
        pass
    try:
        when = parse_time(text)
    except ValueError:
        when = None
    except OverflowError:  # valid, but out of range once in UTC (0001-01-01T00:00+01:00)
        raise BadInput(f"{option}: {text!r} is out of range") from None
    if when is None:
        raise BadInput(
            f"{option}: expected a duration (30m, 2h, 3d) or an ISO time "
            f"(2026-11-01T00:00Z), got {text!r}"
        )
    return when


def parse_age(text: str, option: str) -> timedelta:
    """A duration such as ``30d`` of at most ``MAX_AGE_DAYS``."""
    from redrive.config import parse_duration

    try:
        age = parse_duration(text)
    except ValueError:
        raise _NotADuration(
            f"{option}: expected a duration such as 12h, 30d or 1w, got {text!r}"
        ) from None
    except OverflowError:
        age = None
    if age is None or age > timedelta(days=MAX_AGE_DAYS):
        raise BadInput(f"{option}: {text!r} is too long (at most {MAX_AGE_DAYS}d)")
    return age


class _NotADuration(BadInput):
    """The text is not a duration at all (``parse_when`` then tries an ISO time)."""


def build_filter(
    *,
    status: str | None = None,
    topic: str | None = None,
    handler: str | None = None,
    error_type: str | None = None,
    group: str | None = None,
    tenant: str | None = None,
    correlation_id: str | None = None,
    version: str | None = None,
    since: str | None = None,
    until: str | None = None,
    search: str | None = None,
    default_status: tuple[str, ...] = ("dead",),
) -> Filter:
    """The ``Filter`` the filter options describe."""
    from redrive.models import utcnow
    from redrive.service import Filter

    now = utcnow()
    return Filter(
        statuses=parse_statuses(status, default_status),
        topic=topic,
        handler=handler,
        error_type=error_type,
        fingerprint=group,
        tenant_id=tenant,
        correlation_id=correlation_id,
        version=version,
        created_after=parse_when(since, "--since", now) if since else None,
        created_before=parse_when(until, "--until", now) if until else None,
        search=search or None,
    )


def selection(
    ids: list[str] | None, every: bool, group: str | None, where: Filter, verb: str
) -> Filter | None:
    """None for explicit ids, else the filter; one of ids, ``--all`` or ``--group`` is
    required, so that no command changes everything by accident."""
    if ids and (every or group):
        raise BadInput(f"{verb}: give ids, or --all/--group with filters, not both")
    if ids:
        return None
    if not (every or group):
        raise BadInput(f"{verb}: give record ids, --group FINGERPRINT, or --all [filters]")
    return where


# -- interaction --------------------------------------------------------------------------
def confirm(question: str, yes: bool) -> None:
    """Ask on a terminal; elsewhere refuse unless ``--yes`` (exit 2)."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise BadInput(f"{question.rstrip('?')}: add --yes to confirm (not a terminal)")
    if not typer.confirm(question, default=False):
        raise fail("cancelled", EXIT_FAILED)


@contextmanager
def progress_bar(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar on a terminal (stderr), nothing elsewhere; yields ``advance``."""
    if not sys.stderr.isatty() or total <= 0:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = (label, BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def import_target(path: str, option: str) -> Any:
    """Import ``module:attr`` named by ``option``; the current directory is importable, as
    for ``python -m``. Bad paths are one-line ``BadInput`` errors naming the option."""
    import importlib
    import os

    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise BadInput(f"{option}: expected module:attr, such as myshop.events:bus, got {path!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return getattr(importlib.import_module(module_name), attr)
    except ImportError as exc:
        raise BadInput(f"{option}: cannot import {module_name!r}: {exc}") from None
    except AttributeError:
        raise BadInput(f"{option}: {module_name!r} has no attribute {attr!r}") from None


def plural(count: int, noun: str) -> str:
    """``1 record``, ``2 records``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
