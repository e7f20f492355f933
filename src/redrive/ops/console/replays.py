"""The console's incident workflow: replay everything a filter matches, with the plan
first (the CLI's ``--dry-run``), a confirmation that names the count, optional rate,
canary and abort threshold, and a progress page with a Stop button.

Runs live in the store (``redrive.service.runs``): ``redrive replays`` and
``/api/v1/replays`` see and stop the same ones.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from redrive.exceptions import InvalidTransition, NotFound
from redrive.models import Status
from redrive.ops.api.problems import Problem
from redrive.ops.api.replays import plan_dict
from redrive.ops.api.schemas import FilterIn
from redrive.ops.auth import Role
from redrive.ops.console.web import base_path, check, current, render, set_flash
from redrive.service import ReplayOptions
from redrive.service.runs import ReplayRuns
from redrive.stores.base import Filter

router = APIRouter(include_in_schema=False)

FILTER_KEYS = ("status", "topic", "handler", "error_type", "group", "q", "since")


def filter_in(form: dict[str, str]) -> FilterIn:
    """The API's filter model from the console's filter fields ('any' status: none)."""
    status = form.get("status") or "dead"
    return FilterIn(
        status=None if status == "any" else [Status(status)],
        topic=form.get("topic") or None,
        handler=form.get("handler") or None,
        error_type=form.get("error_type") or None,
        group=form.get("group") or None,
        q=form.get("q") or None,
        since=form.get("since") or None,
        correlation_id=form.get("correlation_id") or None,
    )


def _where(request: Request, form: dict[str, str]) -> Filter:
    ctx, _ = current(request)
    where = ctx.where(filter_in(form))
    return where if where.statuses else where.replace(statuses=(Status.DEAD,))


@router.get("/replays")
def runs_page(request: Request) -> HTMLResponse:
    """Every kept replay run, newest first."""
    ctx, session = current(request)
    return render(request, "replays.html", session, runs=ReplayRuns(ctx.service).list())


@router.get("/replays/new")
def plan_page(
    request: Request,
    status: str = Query("dead", max_length=20),
    topic: str = Query("", max_length=500),
    handler: str = Query("", max_length=500),
    error_type: str = Query("", max_length=500),
    group: str = Query("", max_length=500),
    q: str = Query("", max_length=500),
    since: str = Query("", max_length=64),
) -> HTMLResponse:
    """The plan of replaying everything the filter matches, and the form to start it."""
    ctx, session = current(request)
    form = {
        "status": status,
        "topic": topic,
        "handler": handler,
        "error_type": error_type,
        "group": group,
        "q": q,
        "since": since,
    }
    try:
        plan = ctx.service.plan(_where(request, form))
    except (ValueError, Problem) as exc:
        message = exc.detail if isinstance(exc, Problem) else str(exc)
        return render(
            request, "error.html", session, status=422, title="Bad filter", message=message
        )
    query = urlencode({k: v for k, v in form.items() if v})
    return render(
        request,
        "replay_new.html",
        session,
        plan=plan_dict(plan),
        samples=plan.samples,
        form=form,
        query=query,
        can_act=session.token.role.allows(Role.OPERATOR),
    )


@router.post("/replays", response_model=None)
def start(
    request: Request,
    csrf: str = Form("", max_length=100),
    status: str = Form("dead", max_length=20),
    topic: str = Form("", max_length=500),
    handler: str = Form("", max_length=500),
    error_type: str = Form("", max_length=500),
    group: str = Form("", max_length=500),
    q: str = Form("", max_length=500),
    since: str = Form("", max_length=64),
    upto: str = Form("", max_length=64),
    count: int = Form(0, ge=0),
    rate: str = Form("", max_length=20),
    canary: str = Form("", max_length=20),
    abort_percent: str = Form("", max_length=20),
    note: str = Form("", max_length=1000),
) -> Response:
    """Start the planned replay (bounded by the plan's ``upto``) and show its progress."""
    ctx, session = current(request)
    check(session, csrf, Role.OPERATOR)
    form = {"status": status, "topic": topic, "handler": handler, "error_type": error_type}
    form.update(group=group, q=q, since=since)
    back = f"{base_path(request)}/replays/new?{urlencode({k: v for k, v in form.items() if v})}"
    try:
        options = _options(rate, canary, abort_percent)
        where = _where(request, form)
    except (ValueError, Problem) as exc:
        return _back(request, back, exc.detail if isinstance(exc, Problem) else str(exc))
    plan = ctx.service.plan(where.replace(max_id=upto) if upto else where)
    if plan.count == 0:
        return _back(request, back, "Nothing to replay: no dead letter matches any more.")
    run = ReplayRuns(ctx.service).start(plan, options, actor=session.token.name, note=note or None)
    response = RedirectResponse(f"{base_path(request)}/replays/{run['id']}", status_code=303)
    changed = (
        f" ({plan.count:,} now, {count:,} when planned)" if count and count != plan.count else ""
    )
    set_flash(request, response, f"Replaying {plan.count:,} dead letters{changed}.")
    return response


@router.get("/replays/{run_id}")
def run_page(request: Request, run_id: str = Path(max_length=64)) -> HTMLResponse:
    """A run's progress: done, failed again, left; Stop while it runs."""
    ctx, session = current(request)
    try:
        run = ReplayRuns(ctx.service).get(run_id)
    except NotFound as exc:
        return render(
            request, "error.html", session, status=404, title="Not found", message=str(exc)
        )
    return render(
        request,
        "replay.html",
        session,
        run=run,
        can_act=session.token.role.allows(Role.OPERATOR),
        list_query=_list_query(run),
    )


@router.post("/replays/{run_id}/stop")
def stop(
    request: Request, run_id: str = Path(max_length=64), csrf: str = Form("", max_length=100)
) -> RedirectResponse:
    """Ask the run to stop after the wave in progress."""
    ctx, session = current(request)
    check(session, csrf, Role.OPERATOR)
    target = f"{base_path(request)}/replays/{run_id}"
    response = RedirectResponse(target, status_code=303)
    try:
        ReplayRuns(ctx.service).stop(run_id, actor=session.token.name)
        set_flash(request, response, "Stopping after the wave in progress; the rest stay dead.")
    except (NotFound, InvalidTransition) as exc:
        set_flash(request, response, str(exc))
    return response


def _options(rate: str, canary: str, abort_percent: str) -> ReplayOptions:
    def number(text: str, name: str, low: float, high: float) -> float | None:
        if not text.strip():
            return None
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{name}: expected a number, got {text!r}") from None
        if not low <= value <= high:  # also refuses NaN
            raise ValueError(f"{name}: expected a number from {low:g} to {high:g}")
        return value

    rate_value = number(rate, "rate", 0.001, 1_000_000)
    canary_value = number(canary, "canary", 0, 100_000)
    abort = number(abort_percent, "abort on failure rate", 0, 100)
    return ReplayOptions(
        rate=rate_value,
        canary=int(canary_value or 0),
        abort_on_failure_rate=None if abort is None else abort / 100,
    )


def _back(request: Request, target: str, message: str) -> RedirectResponse:
    response = RedirectResponse(target, status_code=303)
    set_flash(request, response, message)
    return response


def _list_query(run: dict[str, object]) -> str:
    """The dead-letters page of what the run left dead (same topic/group filters)."""
    data = run.get("filter") if isinstance(run.get("filter"), dict) else {}
    assert isinstance(data, dict)
    keys = {"topic": "topic", "handler": "handler", "error_type": "error_type"}
    query = {mine: str(data[theirs]) for mine, theirs in keys.items() if data.get(theirs)}
    if data.get("fingerprint"):
        query["group"] = str(data["fingerprint"])
    return urlencode({"status": "dead", **query})
