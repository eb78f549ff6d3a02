"""Pages: Jinja2 templates (autoescaped) rendered into responses with the dashboard's headers,
and the errors a page shows instead (404 worded the same whatever the id)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

HERE = Path(__file__).parent
STATIC = HERE / "static"
ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")

#: Scripts come from this server only; CodeMirror positions its parts with inline styles.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class PageError(Exception):
    """Shown as a page (or, to a script, as JSON) with this status."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


def not_found() -> PageError:
    # The same words for a made-up id and another workspace's: nothing tells them apart.
    return PageError(404, "Not found", "There is nothing at this address in your workspace.")


def checked_id(value: str) -> str:
    """A path id, or the 404 every unknown id gets."""
    if not ID.match(value):
        raise not_found()
    return value


def when(us: int | float | dt.datetime | None) -> str:
    if us is None:
        return ""
    moment = us if isinstance(us, dt.datetime) else dt.datetime.fromtimestamp(us / 1e6, tz=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return str(value)
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} ms" if value < 1000 else f"{value / 1000:.2f} s"


@cache
def asset_versions() -> dict[str, str]:
    """A short hash of each static file, appended to its URL so browsers reload changed ones."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:12]
        for p in STATIC.iterdir()
        if p.is_file()
    }


def asset(name: str) -> str:
    return f"/static/{name}?v={asset_versions().get(name, '0')}"


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["pretty"] = pretty
    env.filters["ms"] = ms
    env.globals["asset"] = asset
    return env


def render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)


def page(request: Request, name: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """A template as a response; ``viewer`` (the signed-in workspace) and ``nav`` are given
    to every page (``None`` on the login page)."""
    context.setdefault("viewer", getattr(request.state, "viewer", None))
    context.setdefault("nav", "")
    context.setdefault("request_path", request.url.path)
    return HTMLResponse(render(name, **context), status_code=status, headers=HEADERS)


def redirect(url: str, request: Request | None = None) -> Response:
    """303 to ``url``; to htmx, which would swap the page into a target, ``HX-Redirect``."""
    if request is not None and request.headers.get("hx-request"):
        return Response(status_code=200, headers={**HEADERS, "HX-Redirect": url})
    return RedirectResponse(url, status_code=303, headers=HEADERS)


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "") or request.headers.get(
        "content-type", ""
    ).startswith("application/json")
