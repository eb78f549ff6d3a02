"""Errors by audience.

* 422: the engine's validation problems (path in the caller's dialect, what was found, the fix),
  and nothing was changed;
* 401/403: no key, a bad key, or a key without the operator right;
* 404: "not found in this workspace", worded the same whether or not another workspace has it;
* 500: a request id and nothing else (the log has the rest).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..validation import Problem, json_path
from .responses import Json

log = logging.getLogger("voicefn.server")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        problems: Sequence[Problem] = (),
        dialect: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.problems = list(problems)
        self.dialect = dialect
        self.headers = headers

    def body(self, request_id: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.problems or self.status == 422:
            out["problems"] = [p.to_dict() for p in self.problems]
        if self.dialect is not None:
            out["dialect"] = self.dialect
        if request_id:
            out["request_id"] = request_id
        return out


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} was not found in this workspace")


def invalid(
    problems: Iterable[Problem], dialect: str | None = None, message: str | None = None
) -> ApiError:
    problems = list(problems)
    errors = sum(p.severity == "error" for p in problems)
    return ApiError(
        422,
        "invalid",
        message or f"{errors} problem{'s' if errors != 1 else ''}; nothing was changed",
        problems=problems,
        dialect=dialect,
    )


def problem(path: str, message: str, fix: str, found: Any = None) -> Problem:
    return Problem(path, message, fix, found)


def request_id_of(request: Request) -> str | None:
    rid = request.scope.get("voicefn.request_id")
    return rid if isinstance(rid, str) else None


_UNION_MEMBER = re.compile(r"^(str|int|float|bool|none|list|dict|[a-z-]+\[.*\])$")


def _where(loc: Sequence[Any]) -> str:
    """FastAPI's error location as a JSON path: ``$`` is the body, ``query:limit`` a parameter.
    Pydantic's names of union members (``dict[str,any]``, ``str``) are not part of it."""
    parts = [p for p in loc if not (isinstance(p, str) and _UNION_MEMBER.match(p))]
    if parts and parts[0] == "body":
        return json_path(parts[1:])
    if parts and parts[0] in ("query", "path", "header"):
        return f"{parts[0]}:" + ".".join(str(p) for p in parts[1:])
    return json_path(parts)


def _fix(kind: str, ctx: dict[str, Any]) -> str:
    if kind == "missing":
        return "give a value"
    if kind in ("json_invalid", "json_type"):
        return "send a JSON object (Content-Type: application/json)"
    if kind == "extra_forbidden":
        return "remove it or correct its spelling"
    if kind in ("literal_error", "enum"):
        return f"use one of {ctx.get('expected', 'the allowed values')}"
    if "greater" in kind or "less" in kind:
        limit = next((ctx[k] for k in ("gt", "ge", "lt", "le") if k in ctx), None)
        return (
            f"use a value within the limit ({limit})"
            if limit is not None
            else "use a value in range"
        )
    if "too_long" in kind or "too_short" in kind:
        return "change its length"
    return "give a value of the expected type"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Json:
        return Json(exc.body(request_id_of(request)), exc.status, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Json:
        problems: list[Problem] = []
        for err in exc.errors():
            found = err.get("input")
            if not isinstance(found, str | int | float | bool | type(None)):
                found = None
            loc = err.get("loc", ())
            message = str(err.get("msg", "invalid")).rstrip(".")
            if err.get("type") == "json_invalid":  # loc is ("body", <character position>)
                where = loc[-1] if len(loc) > 1 else "?"
                loc, found = ("body",), None
                message = f"not valid JSON (at character {where}): {message}"
            where = _where(loc)
            same = next((p for p in problems if p.path == where), None)
            if same is not None:  # one problem per place: a union's members, joined
                problems[problems.index(same)] = Problem(
                    where,
                    f"{same.message}, or {message[0].lower()}{message[1:]}",
                    same.fix,
                    same.found,
                )
                continue
            problems.append(
                Problem(
                    where,
                    message,
                    _fix(str(err.get("type", "")), err.get("ctx") or {}),
                    found,
                )
            )
        error = invalid(problems)
        return Json(error.body(request_id_of(request)), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Json:
        if exc.status_code == 400:  # FastAPI could not even decode the body
            unreadable = invalid(
                [
                    Problem(
                        "$",
                        f"the body cannot be read: {exc.detail}",
                        "send UTF-8 JSON with Content-Type: application/json",
                    )
                ]
            )
            return Json(unreadable.body(request_id_of(request)), 422)
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = (
            "no such route; the API is described at /docs"
            if exc.status_code == 404
            else str(exc.detail)
        )
        body: dict[str, Any] = {"error": kind, "message": message}
        rid = request_id_of(request)
        if rid:
            body["request_id"] = rid
        return Json(body, exc.status_code, getattr(exc, "headers", None))
