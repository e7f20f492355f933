"""``create_app``: the REST API, the web console, health checks and metrics in one ASGI app.

Run it with ``redrive serve``, or mount it in your own service::

    from fastapi import FastAPI
    from redrive.ops.api import create_app

    app = FastAPI()
    app.mount("/dlq", create_app(settings=my_settings))
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

import redrive
from redrive.config import Settings
from redrive.ops.api import admin, bulk, files, problems, records, replays, workers
from redrive.ops.api.context import Context, get_context
from redrive.ops.api.inputs import PlainText
from redrive.ops.api.limits import BodyLimit
from redrive.ops.api.options import ApiOptions
from redrive.ops.api.schemas import HealthOut
from redrive.service import DeadLetterQueue

if TYPE_CHECKING:
    from redrive.ops.alerts import Monitor

API_PREFIX = "/api/v1"


def create_app(
    service: DeadLetterQueue | None = None,
    settings: Settings | None = None,
    *,
    console: bool = True,
    metrics: bool = True,
    monitor: Monitor | None = None,
) -> FastAPI:
    """Build the ASGI app for ``service`` (default: one on ``settings.store_url``).

    :param settings: the ``[api]`` limits and the ``redact`` patterns come from here.
    :param console: serve the web console at ``/``.
    :param metrics: serve Prometheus metrics at ``/metrics`` when ``prometheus_client``
        is installed (without auth unless ``[api] metrics_auth = true``).
    :param monitor: an alert ``Monitor`` to run for as long as the app (started and
        stopped by its lifespan; its sink failures show in ``/metrics``).

    .. versionadded:: 0.1
    """
    settings = settings or Settings()
    options = ApiOptions.from_settings(settings)
    owned = service is None
    if service is None:
        from redrive.bootstrap import open_store

        service = DeadLetterQueue(open_store(settings.store_url), max_replays=settings.max_replays)
    ctx = Context.build(service, options)
    app = FastAPI(
        title="redrive",
        version=redrive.__version__,
        summary="Inspect, replay and clean up dead letters.",
        # Swagger UI and ReDoc load from a CDN; the console must work offline.
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan(ctx, owned, monitor),
    )
    app.state.redrive = ctx
    problems.install(app)
    app.add_middleware(BodyLimit, max_bytes=options.max_body_bytes)
    app.add_middleware(PlainText)
    app.include_router(_health_router())
    api = APIRouter(prefix=API_PREFIX)
    for module in (
        bulk,
        records,
        admin,
        files,
        replays,
        workers,
    ):  # bulk first: /dead-letters/retry
        api.include_router(module.router)
    app.include_router(api)
    if not (metrics and _mount_metrics(app, ctx, monitor)):
        _explain_metrics(app, metrics)
    if console:
        from redrive.ops.console import install

        install(app)
    return app


def _lifespan(ctx: Context, owned: bool, monitor: Monitor | None) -> Callable[[FastAPI], Any]:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(_recover_runs, ctx, ended=False)
        if monitor is not None:
            await monitor.start()
        try:
            yield
        finally:
            if monitor is not None:
                await monitor.stop()
            await asyncio.to_thread(_recover_runs, ctx, ended=True)
            if owned:  # a store the caller passed in is the caller's to close
                ctx.service.store.close()

    return lifespan


def _recover_runs(ctx: Context, *, ended: bool) -> None:
    """Replay runs that lost their server are marked interrupted (at start); this
    server's own are too when it stops (their threads end with it)."""
    from redrive.service.runs import ReplayRuns

    try:
        ReplayRuns(ctx.service).recover(ended=ended)
    except Exception as exc:  # the store may be down at start: the app still serves
        problems.logger.warning("could not check replay runs: %s", type(exc).__name__)


def _health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=HealthOut)
    def healthz() -> dict[str, str]:
        """The process is alive (no auth)."""
        return {"status": "ok"}

    @router.get("/readyz", response_model=HealthOut, responses=problems.responses(503))
    def readyz(request: Request) -> JSONResponse:
        """The store answers (no auth); 503 if it does not."""
        try:
            get_context(request).service.count()
        except Exception as exc:  # any failure means not ready; the log says which
            problems.logger.warning("readiness check failed: %s", type(exc).__name__)
            return problems.problem_response(request, 503, "the store is unreachable")
        return JSONResponse({"status": "ok"})

    return router


def _explain_metrics(app: FastAPI, enabled: bool) -> None:
    """``/metrics`` says why there are none, rather than a bare 404."""
    detail = (
        'metrics need their extra: pip install "redrive[metrics]"'
        if enabled
        else "this app serves no metrics (create_app(metrics=False))"
    )

    @app.get("/metrics", include_in_schema=False)
    def no_metrics(request: Request) -> JSONResponse:
        return problems.problem_response(request, 404, detail)


def _mount_metrics(app: FastAPI, ctx: Context, monitor: Monitor | None) -> bool:
    """Mount ``/metrics`` if prometheus_client and the metrics module are there."""
    if importlib.util.find_spec("prometheus_client") is None:
        return False
    try:
        from redrive.ops.metrics import metrics_app
    except ImportError:  # an install without the metrics feature
        return False
    # A route, not a mount: a mount would redirect /metrics to /metrics/. The endpoint is
    # a class instance, so Starlette treats it as an ASGI app rather than a function.
    scrape = metrics_app(ctx.service, monitor=monitor)
    endpoint = MetricsAuth(scrape, ctx if ctx.options.metrics_auth else None)
    app.router.routes.append(Route("/metrics", endpoint, methods=["GET"], include_in_schema=False))
    return True


class MetricsAuth:
    """Ask for a viewer token before the metrics, when ``ctx`` is given."""

    def __init__(self, app: ASGIApp, ctx: Context | None) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.ctx is not None:
            header = dict(scope.get("headers") or []).get(b"authorization", b"")
            scheme, _, token = header.decode("latin-1").partition(" ")
            checked = None
            if scheme.lower() == "bearer" and token:
                checked = await asyncio.to_thread(self.ctx.tokens.check, token.strip())
            if checked is None:
                response = problems.problem_response(
                    None,
                    401,
                    "send an API token: Authorization: Bearer <token>",
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
