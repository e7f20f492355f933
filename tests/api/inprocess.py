"""The app in-process: an httpx transport that calls the ASGI app directly, without a socket.

``with InProcess(app) as transport:`` runs the app's lifespan once, on one event loop in a
thread of its own (as uvicorn would), and ``httpx.Client(transport=transport)`` sends
requests to it. Responses are read whole before they are returned, so streaming shows no
difference here: tests of streamed responses and body limits use a real server
(``tests/api/server.py``).
"""

from __future__ import annotations

import contextlib
from types import TracebackType

import anyio.from_thread
import httpx
from starlette.applications import Starlette


class _Transport(httpx.BaseTransport):
    """A synchronous transport that runs each request on the portal's event loop."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, app: Starlette) -> None:
        self._portal = portal
        # Like a server: an exception in the app is a 500 answer, not a raise in the test.
        self._asgi = httpx.ASGITransport(app, raise_app_exceptions=False)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        # The client's request body is a synchronous stream; the ASGI transport needs one it
        # can read asynchronously, so the body is read here and sent as bytes.
        body = request.read()
        forwarded = httpx.Request(
            request.method, request.url, headers=request.headers, content=body
        )

        async def call() -> tuple[int, httpx.Headers, bytes]:
            response = await self._asgi.handle_async_request(forwarded)
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
            return response.status_code, response.headers, raw

        status, headers, raw = self._portal.call(call)
        return httpx.Response(status, headers=headers, content=raw, request=request)


class InProcess:
    """``with InProcess(app) as transport:`` serves ``app`` in-process until the block ends."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> httpx.BaseTransport:
        portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        self._stack.enter_context(
            portal.wrap_async_context_manager(self.app.router.lifespan_context(self.app))
        )
        return _Transport(portal, self.app)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()
