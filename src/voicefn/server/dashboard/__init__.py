"""The dashboard: server-rendered pages (Jinja2, htmx, a CodeMirror 6 JSON editor) on the API's
own process, behind a login with an API key (see :mod:`.auth`). Everything it loads ships in
this package (``static/``); nothing comes from a CDN.

``voicefn.server.app.create_app`` calls :func:`mount` when this package is present.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from . import agents, auth, calls, executions, functions, jobs, keys, stored_calls
from .render import HEADERS, STATIC, PageError, page, render, wants_json

ROUTERS = (
    auth.router,
    agents.router,
    functions.router,
    executions.router,
    calls.router,
    stored_calls.router,
    jobs.router,
    keys.router,
)


def mount(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
    app.state.dashboard_calls = live_calls = calls.Calls()
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with inner(app) as state:
            try:
                yield state
            finally:
                await live_calls.aclose()  # open test calls end before the platform stops

    app.router.lifespan_context = lifespan
    app.mount("/static", StaticFiles(directory=STATIC), name="dashboard-static")
    app.add_exception_handler(PageError, _page_error)  # type: ignore[arg-type]
    app.add_exception_handler(auth.LoginRequired, _login_required)


async def _page_error(request: Request, exc: PageError) -> Response:
    if wants_json(request):
        return JSONResponse(
            {"ok": False, "error": exc.title, "message": exc.message},
            status_code=exc.status,
            headers=HEADERS,
        )
    if request.headers.get("hx-request"):
        html = render("_error.html", title=exc.title, message=exc.message)
        return Response(html, status_code=exc.status, media_type="text/html", headers=HEADERS)
    return page(request, "error.html", status=exc.status, title=exc.title, message=exc.message)


async def _login_required(request: Request, _: Exception) -> Response:
    return auth.login_redirect(request)


__all__ = ["mount"]
