"""Retell's custom function (a ``general_tools`` item with ``"type": "custom"``), from Retell's
docs and API reference (``CustomTool``).

Retell sends ``{"name": ..., "args": {...}}`` (plus its call object) to ``url`` with ``method``
(default POST), or the arguments as the body itself with ``args_at_root``; voicefn's template
sends the same ``name`` and ``args`` (a GET/DELETE sends the arguments as the query string).
Mapped fields: ``name``, ``description``, ``parameters``, ``url``, ``method``, ``headers`` and
``query_params`` (``{{variable}}`` becomes ``{variable}``), ``timeout_ms`` (Retell's default
120 000 ms, voicefn's maximum), and the line spoken while it runs: ``speak_during_execution``
with ``execution_message_description`` is the filler when ``execution_message_type`` is
``static_text``.

Kept in ``platform_fields["retell"]`` for converting back, not acted on (each with a warning):
a ``prompt`` execution message (Retell has the LLM write the line; voicefn speaks a fixed
filler), ``speak_after_execution: false``, ``response_variables``, ``tool_id``,
``execution_timing``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

from ..spec import MAX_TIMEOUT_MS, Function
from ..validation import Locate, Problem
from ._common import drop_none, prefix_locator, repeat_loss
from .vapi import from_liquid, split_keys, to_liquid

NAME = "retell"
PLATFORM = "retell"
KEYS = (
    "type",
    "name",
    "description",
    "url",
    "method",
    "headers",
    "query_params",
    "parameters",
    "speak_during_execution",
    "speak_after_execution",
    "execution_message_description",
    "execution_message_type",
    "timeout_ms",
    "args_at_root",
)
KEPT_KEYS = ("response_variables", "tool_id", "execution_timing")
DEFAULT_TIMEOUT_MS = 120_000
QUERY_METHODS = ("GET", "DELETE")

locate: Locate = prefix_locator(
    {
        ("filler",): ("execution_message_description",),
        ("action", "url"): ("url",),
        ("action", "method"): ("method",),
        ("action", "headers"): ("headers",),
        ("action", "timeout_ms"): ("timeout_ms",),
        ("action", "param"): ("query_params",),
        ("action",): (),
        ("phase",): (),
    }
)


def detect(data: dict[str, Any]) -> bool:
    from . import SIGNS  # the registry's sign (detection imports no dialect module)

    return SIGNS["retell"](data)


_CONVERSIONS = {"integer": "i", "number": "f"}


def _specifier(prop: str, schema: Any) -> str:
    kind = schema.get("type") if isinstance(schema, dict) else None
    return f"%({prop}){_CONVERSIONS.get(str(kind), 's')}"


def args_template(name: str, properties: dict[str, Any]) -> dict[str, Any]:
    """Retell's body when ``args_at_root`` is off, as a voicefn request template."""
    return {"name": name, "args": {p: _specifier(p, s) for p, s in properties.items()}}


def to_canonical(data: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    kept: dict[str, Any] = {k: data[k] for k in KEPT_KEYS if k in data}
    extra, problems = split_keys(data, KEYS, KEPT_KEYS, ())
    kept.update(extra)
    for key in ("response_variables", "execution_timing"):
        if key in data:
            problems.append(
                Problem(
                    f"$.{key}",
                    f"voicefn does not use {key}; it is kept for converting back",
                    "the LLM reads the whole result",
                    severity="warning",
                )
            )
    method = str(data.get("method") or "POST").upper()
    parameters = data.get("parameters") or {"type": "object", "properties": {}}
    props = parameters.get("properties") if isinstance(parameters, dict) else None
    props = props if isinstance(props, dict) else {}
    name = data.get("name")
    query = data.get("query_params") or {}
    query = (
        {str(k): from_liquid(str(v)) for k, v in query.items()} if isinstance(query, dict) else {}
    )
    url = data.get("url")
    param: Any
    if method in QUERY_METHODS:
        param = {**query, **{p: _specifier(p, s) for p, s in props.items()}}
    else:
        if query and isinstance(url, str):
            sep = "&" if "?" in url else "?"
            url += sep + "&".join(
                f"{quote(k, safe='')}={v if v.startswith('{') else quote(v, safe='')}"
                for k, v in query.items()
            )
        param = None if data.get("args_at_root") else args_template(str(name), props)
    if data.get("args_at_root") is not None and method in QUERY_METHODS:
        kept["args_at_root"] = data["args_at_root"]
    timeout = data.get("timeout_ms", DEFAULT_TIMEOUT_MS)
    if isinstance(timeout, int) and not isinstance(timeout, bool) and timeout > MAX_TIMEOUT_MS:
        problems.append(
            Problem(
                "$.timeout_ms",
                f"voicefn waits at most {MAX_TIMEOUT_MS} ms for a function; {timeout} ms becomes "
                f"{MAX_TIMEOUT_MS}",
                f"use at most {MAX_TIMEOUT_MS}, or make the API answer sooner",
                timeout,
                "warning",
            )
        )
        kept["timeout_ms"] = timeout
        timeout = MAX_TIMEOUT_MS
    filler = None
    speak = data.get("speak_during_execution")
    message = data.get("execution_message_description")
    kind = data.get("execution_message_type", "prompt")
    if speak and isinstance(message, str) and message.strip():
        if kind == "static_text":
            filler = from_liquid(message)
        else:
            kept["execution_message"] = {"type": kind, "description": message}
            problems.append(
                Problem(
                    "$.execution_message_description",
                    "this is a prompt (Retell has the LLM write the line); voicefn speaks a fixed "
                    "filler, so none is spoken. The prompt is kept for converting back",
                    'write the line as the filler, or set "execution_message_type": "static_text"',
                    severity="warning",
                )
            )
    elif speak:
        kept["speak_during_execution"] = True
    if data.get("speak_after_execution") is False:
        kept["speak_after_execution"] = False
        problems.append(
            Problem(
                "$.speak_after_execution",
                "voicefn always lets the LLM answer after the result; false is kept for "
                "converting back",
                "remove it, or leave it for Retell",
                severity="warning",
            )
        )
    headers = data.get("headers")
    doc = drop_none(
        {
            "name": name,
            "description": data.get("description", ""),
            "phase": "in_call",
            "parameters": parameters,
            "filler": filler,
            "action": drop_none(
                {
                    "type": "http",
                    "method": method,
                    "url": url,
                    "param": param,
                    "headers": {str(k): from_liquid(str(v)) for k, v in headers.items()}
                    if isinstance(headers, dict)
                    else headers,
                    "timeout_ms": timeout,
                }
            ),
            "platform_fields": {PLATFORM: kept} if kept else None,
        }
    )
    return doc, problems


def from_function(f: Function) -> tuple[dict[str, Any], list[str]]:
    a = f.http
    kept = dict(f.platform_fields.get(PLATFORM, {}))
    lost: list[str] = repeat_loss(f)
    if f.phase != "in_call":
        lost.append(f"phase {f.phase!r} (Retell custom functions are called during the call)")
    if a.pre_call_webhook_param is not None or a.pre_call_webhook_url is not None:
        lost.append("the pre-call webhook")
    if isinstance(f.filler, dict) and len(f.filler) > 1:
        lost.append("filler lines in other languages (Retell has one execution message)")
    url, _, raw_query = a.url.partition("?")
    query: dict[str, Any] = {
        unquote(k): unquote(v)
        for k, _, v in (pair.partition("=") for pair in raw_query.split("&") if pair)
    }
    args_at_root: bool | None = None
    props = f.properties
    as_args = {p: _specifier(p, s) for p, s in props.items()}
    if a.method in QUERY_METHODS:
        template = a.param if isinstance(a.param, dict) else as_args
        fixed = {k: v for k, v in template.items() if k not in props or v != as_args.get(k)}
        if any(not isinstance(v, str) or "%(" in v for v in fixed.values()):
            lost.append("the param template (Retell sends the arguments as they are)")
        query.update({k: v for k, v in fixed.items() if isinstance(v, str) and "%(" not in v})
        if "args_at_root" in kept:
            args_at_root = kept["args_at_root"]
    elif a.param is None:
        args_at_root = True
    elif a.param == args_template(f.name, props):
        args_at_root = False
    else:
        args_at_root = True
        lost.append("the param template (Retell sends the arguments as they are, or under args)")
    headers = {k: to_liquid(v) for k, v in a.headers.items()}
    if a.token is not None:
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        headers["Authorization"] = a.token
    message = kept.get("execution_message")
    doc = drop_none(
        {
            "type": "custom",
            "name": f.name,
            "description": f.description,
            "url": url,
            "method": a.method,
            "headers": headers or None,
            "query_params": {k: to_liquid(str(v)) for k, v in query.items()} or None,
            "parameters": f.parameters,
            "speak_during_execution": f.filler is not None
            or bool(message)
            or bool(kept.get("speak_during_execution")),
            "speak_after_execution": kept.get("speak_after_execution", True),
            "execution_message_description": to_liquid(f.filler_for() or "")
            if f.filler is not None
            else (message or {}).get("description"),
            "execution_message_type": "static_text"
            if f.filler is not None
            else (message or {}).get("type"),
            "timeout_ms": kept["timeout_ms"]
            if a.timeout_ms == MAX_TIMEOUT_MS and "timeout_ms" in kept
            else a.timeout_ms,
            "args_at_root": args_at_root,
        }
    )
    for key in KEPT_KEYS:
        if key in kept:
            doc[key] = kept[key]
    for key, value in kept.items():
        if key not in (
            *KEPT_KEYS,
            "args_at_root",
            "timeout_ms",
            "execution_message",
            "speak_during_execution",
            "speak_after_execution",
        ):
            doc[key] = value
    return doc, lost
