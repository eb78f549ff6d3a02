"""The FastAPI application: ``create_app(config)`` mounts the API routers (and the dashboard,
when the ``voicefn.server.dashboard`` package is present) around one :class:`Platform`.

Tests and embedders build it with a :class:`~voicefn.server.config.ServerConfig` (database URL,
data directory, egress defaults) and run it under any ASGI server; ``voicefn serve`` runs it
under uvicorn.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from starlette.types import ASGIApp

from .. import __version__
from . import errors, mcp
from .config import ServerConfig
from .fastpath import ExecuteFastPath
from .freshness import Freshness
from .middleware import Observability
from .platform import Platform
from .responses import Json
from .routes import (
    agents,
    calls,
    execute,
    executions,
    functions,
    health,
    jobs,
    schemas,
    tenants,
    tools,
)

DESCRIPTION = """\
The voicefn platform: store agents and their custom functions (in any dialect: voicefn, Bolna,
Call2Me, CallKaro, or pasted cURL), test them, and run them for your voice stack.

Authenticate with a workspace's API key: `Authorization: Bearer vfn_...`. Invalid input is a
422 listing every problem (JSON path in your dialect, what was found, the fix) and changes
nothing.
"""

ROUTERS = (
    tenants.router,
    agents.router,
    functions.router,
    tools.router,
    execute.router,
    executions.router,
    jobs.router,
    calls.router,
    schemas.router,
    health.router,
)


class VoicefnApp(FastAPI):
    """FastAPI with our layers outermost: :class:`Observability` (request id, access log,
    metrics, the body limit, the last-resort 500), then the execute fast path, then FastAPI's own stack (its
    error middleware, routing). A well-formed execute request is answered by the
    fast path without passing through FastAPI's layers at all."""

    platform: Platform
    freshness: Freshness

    def build_middleware_stack(self) -> ASGIApp:
        inner = super().build_middleware_stack()
        fast = ExecuteFastPath(inner, platform=self.platform, freshness=self.freshness)
        return Observability(
            fast,
            metrics=self.platform.metrics,
            root=self,
            max_body=self.platform.config.max_body_bytes,
        )


async def _internal(request: Request, exc: Exception) -> Json:
    """What Starlette's error middleware sends for an unhandled exception (it re-raises it
    after, and :class:`Observability` logs it with the traceback)."""
    return Json({"error": "internal", "request_id": request.scope.get("voicefn.request_id")}, 500)


def create_app(config: ServerConfig | None = None) -> FastAPI:
    platform = Platform(config or ServerConfig())
    freshness = Freshness(platform)
    lifespans: list[Any] = []  # of mounted parts (the MCP endpoint's session manager)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await platform.start()
        try:
            await freshness.start()
            async with AsyncExitStack() as exits:
                await mcp.enter(lifespans, exits)
                yield
        finally:
            freshness.stop()
            await platform.stop()

    app = VoicefnApp(
        title="voicefn",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Metrics are Prometheus (/metrics); FastAPI's native OpenTelemetry costs every request
        # a look at the global providers.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.platform = app.state.platform = platform
    app.freshness = app.state.freshness = freshness
    errors.install(app)
    app.add_exception_handler(Exception, _internal)
    for router in ROUTERS:
        app.include_router(router)
    mcp.mount(app, lifespans)
    _mount_dashboard(app)
    return app


def _mount_dashboard(app: FastAPI) -> None:
    """``voicefn.server.dashboard.mount(app)`` when the dashboard ships; else ``/`` shows the
    API documentation."""
    if importlib.util.find_spec(f"{__package__}.dashboard") is not None:
        dashboard = importlib.import_module(f"{__package__}.dashboard")
        if hasattr(dashboard, "mount"):
            dashboard.mount(app)
            return

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/docs")
