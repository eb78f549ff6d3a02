"""Signing in: an API key pasted once, kept in an encrypted session cookie.

The cookie (``__Host-voicefn-session``: Secure, HttpOnly, SameSite=Strict, Path=/) holds the key,
a CSRF token and when it was issued, encrypted and authenticated with the server's secret key
(the store's :class:`~voicefn.store.SecretBox`, so every process sharing a database reads it).
Each request resolves the key through :func:`voicefn.server.deps.authenticate`, exactly like a
Bearer key: a revoked key ends its sessions at once, and every query is the key's workspace's.

Every request that changes something carries the CSRF token (a form's ``csrf_token`` field, or
the ``X-CSRF-Token`` header htmx and the scripts send) and, when the browser says where it came
from, an ``Origin`` of this server.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ...store import Principal, SecretBox, SecretKeyError, Workspace
from .. import deps
from ..platform import Platform
from .render import HEADERS, PageError, page, redirect

COOKIE = "__Host-voicefn-session"
MAX_AGE_S = 12 * 3600
PURPOSE = "voicefn dashboard session"
MAX_FORM = 1 << 20
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Session:
    key: str
    csrf: str
    issued: int


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking: the signed-in key's workspace, and the session's CSRF token."""

    principal: Principal
    csrf: str

    @property
    def ws(self) -> Workspace:
        return self.principal.workspace


class LoginRequired(Exception):
    """No session, an expired one, or a key that no longer works."""


def _box(platform: Platform) -> SecretBox:
    box = getattr(platform.store, "box", None)
    if isinstance(box, SecretBox):
        return box
    config = platform.config
    env = {"VOICEFN_SECRET_KEY": config.secret_key} if config.secret_key else None
    return SecretBox.load(config.data_dir, env)


def seal(platform: Platform, key: str) -> str:
    csrf = secrets.token_urlsafe(32)
    return _box(platform).encrypt(
        {"purpose": PURPOSE, "key": key, "csrf": csrf, "issued": int(time.time())}
    )


def unseal(platform: Platform, value: str | None) -> Session | None:
    if not value or len(value) > 4096:
        return None
    try:
        data: Any = _box(platform).decrypt(value)
    except (SecretKeyError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("purpose") != PURPOSE:
        return None
    key, csrf, issued = data.get("key"), data.get("csrf"), data.get("issued")
    if not (isinstance(key, str) and isinstance(csrf, str) and isinstance(issued, int)):
        return None
    if not 0 <= time.time() - issued < MAX_AGE_S:
        return None
    return Session(key, csrf, issued)


def set_cookie(response: Response, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=MAX_AGE_S,
        path="/",
        secure=True,
        httponly=True,
        samesite="strict",
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")


async def form(request: Request) -> dict[str, str]:
    """A urlencoded form's fields (the last value of each); ``{}`` for any other body."""
    cached = getattr(request.state, "form", None)
    if isinstance(cached, dict):
        return cached
    fields: dict[str, str] = {}
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        body = await request.body()
        if len(body) > MAX_FORM:
            raise PageError(413, "Too large", "This form is larger than 1 MiB.")
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        fields = {k: v[-1] for k, v in parsed.items()}
    request.state.form = fields
    return fields


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not every client says; the token still has to match
    url = request.url
    return origin == f"{url.scheme}://{url.netloc}"


async def viewer(request: Request) -> Viewer:
    """The signed-in workspace; for a request that changes something, after the CSRF check."""
    platform = deps.platform(request)
    session = unseal(platform, request.cookies.get(COOKIE))
    if session is None:
        raise LoginRequired
    principal = await deps.authenticate(request, session.key)
    if principal is None:
        raise LoginRequired
    if request.method not in SAFE:
        given = request.headers.get("x-csrf-token") or (await form(request)).get("csrf_token")
        if (
            not given
            or not hmac.compare_digest(given.encode(), session.csrf.encode())
            or not _same_origin(request)
        ):
            raise PageError(
                403,
                "Refused",
                "This request did not carry this session's form token, so nothing was changed. "
                "Reload the page and try again.",
            )
    found = Viewer(principal, session.csrf)
    request.state.viewer = found
    return found


ViewerDep = Annotated[Viewer, Depends(viewer)]
PlatformDep = deps.PlatformDep

router = APIRouter(include_in_schema=False)


def _next(value: str | None) -> str:
    """Where to go after signing in: a path of this site only."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/agents"


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _insecure(request: Request) -> bool:
    """Plain HTTP to another machine: a browser drops a Secure cookie sent that way."""
    return request.url.scheme != "https" and not _is_loopback(request.url.hostname)


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    return page(
        request,
        "login.html",
        viewer=None,
        next=_next(next),
        error=None,
        insecure=_insecure(request),
    )


@router.post("/login")
async def login(request: Request, platform: PlatformDep) -> Response:
    fields = await form(request)
    target = _next(fields.get("next"))
    key = fields.get("api_key", "").strip()
    if not _same_origin(request):
        raise PageError(403, "Refused", "Sign in from this server's own login page.")
    error = None
    if _insecure(request):
        error = (
            "This page was reached over plain HTTP from another machine, where the session "
            "cookie (Secure) cannot be kept. Open the dashboard over HTTPS (a TLS reverse "
            "proxy) or on this machine's localhost."
        )
    elif not key:
        error = "Paste an API key (it starts with vfn_)."
    elif await deps.authenticate(request, key) is None:
        error = "This API key is unknown or revoked."
    if error is not None:
        return page(
            request,
            "login.html",
            status=401 if key else 422,
            viewer=None,
            next=target,
            error=error,
            insecure=_insecure(request),
        )
    response = redirect(target)
    set_cookie(response, seal(platform, key))
    return response


@router.post("/logout")
async def logout(request: Request, _: ViewerDep) -> Response:
    response = redirect("/login")
    clear_cookie(response)
    return response


def login_redirect(request: Request) -> Response:
    """Where a request without a working session goes: the login page, then back."""
    path = request.url.path
    if request.url.query and request.method == "GET":
        path += f"?{request.url.query}"
    target = f"/login?next={quote(path if request.method == 'GET' else '/agents')}"
    if request.headers.get("hx-request") or request.method not in SAFE:
        response = Response(
            "Sign in again: your session ended.",
            status_code=401,
            headers={**HEADERS, "HX-Redirect": target},
        )
    else:
        response = redirect(target)
    clear_cookie(response)
    return response
