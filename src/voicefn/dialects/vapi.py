"""Vapi's function tool (``"type": "function"`` with ``server.url``), from Vapi's docs and API
reference (``CreateFunctionToolDTO``, ``Server``, ``ToolMessageStart``/``-Failed``/...).

Vapi does not call an arbitrary API: it POSTs its ``tool-calls`` message to ``server.url``::

    {"message": {"type": "tool-calls",
                 "toolCallList": [{"id": "...", "name": "get_weather",
                                   "arguments": {"location": "San Francisco"}}]}}

and reads ``{"results": [{"toolCallId": ..., "result": ...}]}`` back. So a loaded Vapi tool is a
voicefn function whose ``param`` builds that message (the tool call id is the execution id), and
the server that answered Vapi answers voicefn unchanged. Mapped fields:

- ``function.name``/``description``/``parameters`` as they are;
- the first ``request-start`` message (``content``, or ``contents`` per language) is the filler;
- ``server.timeoutSeconds`` (Vapi's default 20 s) is ``timeout_ms``; ``server.headers`` are the
  headers (Liquid ``{{name}}`` becomes ``{name}``).

Kept in ``platform_fields["vapi"]`` for converting back, but not acted on (each with a warning):
the other messages (``request-failed``, ``request-complete``, ``request-response-delayed``, more
``request-start`` variants), ``async``, ``strict``, the server's ``credentialId``/``secret``/
``backoffPlan``..., ``variableExtractionPlan``, ``rejectionPlan``, static ``parameters``.
"""

from __future__ import annotations

import re
from typing import Any

from ..spec import Function
from ..validation import Locate, Problem, did_you_mean, json_path
from ._common import drop_none, prefix_locator, repeat_loss

NAME = "vapi"
PLATFORM = "vapi"
TOP_KEYS = ("type", "function", "server", "messages", "async")
#: Vapi fields voicefn keeps for converting back but does not use.
KEPT_KEYS = (
    "variableExtractionPlan",
    "rejectionPlan",
    "parameters",
    "id",
    "orgId",
    "createdAt",
    "updatedAt",
)
FUNCTION_KEYS = ("name", "description", "parameters", "strict")
SERVER_KEYS = ("url", "timeoutSeconds", "headers")
SERVER_KEPT = (
    "credentialId",
    "secret",
    "backoffPlan",
    "staticIpAddressesEnabled",
    "encryptedPaths",
)
DEFAULT_TIMEOUT_S = 20
_LIQUID = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_BRACES = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")

locate: Locate = prefix_locator(
    {
        ("name",): ("function", "name"),
        ("description",): ("function", "description"),
        ("parameters",): ("function", "parameters"),
        ("filler",): ("messages",),
        ("action", "url"): ("server", "url"),
        ("action", "timeout_ms"): ("server", "timeoutSeconds"),
        ("action", "headers"): ("server", "headers"),
        ("action",): ("server",),
        ("phase",): (),
    }
)


def from_liquid(text: str) -> str:
    """``{{name}}`` (Liquid, Retell, ElevenLabs) -> voicefn's ``{name}``."""
    return _LIQUID.sub(r"{\1}", text)


def to_liquid(text: str) -> str:
    """voicefn's ``{name}`` -> ``{{name}}``."""
    return _BRACES.sub(r"{{\1}}", text)


def split_keys(
    data: dict[str, Any], known: tuple[str, ...], kept: tuple[str, ...], prefix: tuple[str, ...]
) -> tuple[dict[str, Any], list[Problem]]:
    """Keys neither known nor kept: a near miss of a known key is an error with a did-you-mean;
    anything else is kept for converting back, with a warning. Returns the kept ones."""
    extra: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, value in data.items():
        if key in known or key in kept:
            continue
        hint = did_you_mean(str(key), known)
        path = json_path((*prefix, key))
        if hint:
            problems.append(Problem(path, f"unknown field {key!r}", f"did you mean {hint!r}?"))
        else:
            extra[key] = value
            problems.append(
                Problem(
                    path,
                    f"voicefn does not use {key!r}; it is kept for converting back",
                    "remove it if it is not meant for this platform",
                    severity="warning",
                )
            )
    return extra, problems


def envelope(name: str, properties: dict[str, Any]) -> dict[str, Any]:
    """The ``tool-calls`` message Vapi POSTs, as a voicefn request template."""
    spec = {"integer": "i", "number": "f"}
    arguments = {
        p: f"%({p}){spec.get(str(s.get('type')) if isinstance(s, dict) else '', 's')}"
        for p, s in properties.items()
    }
    return {
        "message": {
            "type": "tool-calls",
            "toolCallList": [{"id": "{execution_id}", "name": name, "arguments": arguments}],
        }
    }


def _filler(message: dict[str, Any]) -> str | dict[str, str] | None:
    contents = message.get("contents")
    if isinstance(contents, list) and contents:
        lines = {
            str(c.get("language") or "en"): from_liquid(c["text"])
            for c in contents
            if isinstance(c, dict) and isinstance(c.get("text"), str)
        }
        if lines:
            return lines
    content = message.get("content")
    return from_liquid(content) if isinstance(content, str) and content.strip() else None


def detect(data: dict[str, Any]) -> bool:
    from . import SIGNS  # the registry's sign (detection imports no dialect module)

    return SIGNS["vapi"](data)


def to_canonical(data: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    kept: dict[str, Any] = {k: data[k] for k in KEPT_KEYS if k in data}
    extra, problems = split_keys(data, TOP_KEYS, KEPT_KEYS, ())
    kept.update(extra)
    fn = data.get("function")
    if not isinstance(fn, dict):
        problems.append(
            Problem(
                "$.function",
                "a Vapi function tool needs its function: name, description, parameters",
                'add "function": {"name": ..., "description": ..., "parameters": {...}}',
                None if fn is None else fn,
            )
        )
        fn = {}
    fn_extra, more = split_keys(fn, FUNCTION_KEYS, (), ("function",))
    problems += more
    if "strict" in fn:
        fn_extra["strict"] = fn["strict"]
    if fn_extra:
        kept["function"] = fn_extra
    server = data.get("server")
    if not isinstance(server, dict) or not server.get("url"):
        problems.append(
            Problem(
                "$.server.url",
                "required field is missing: voicefn calls the tool's server, and this tool has none "
                "(a client-side tool runs in the browser)",
                'add "server": {"url": "https://..."}',
            )
        )
        server = server if isinstance(server, dict) else {}
    server_extra, more = split_keys(server, SERVER_KEYS, SERVER_KEPT, ("server",))
    problems += more
    server_kept = {k: server[k] for k in SERVER_KEPT if k in server} | server_extra
    if server_kept:
        kept["server"] = server_kept
    if data.get("async") is True:
        problems.append(
            Problem(
                "$.async",
                "voicefn waits for every result; Vapi's async (answer without waiting) is kept "
                "for converting back but not used",
                "leave it, or remove async if the caller should hear the result",
                severity="warning",
            )
        )
    if "async" in data:
        kept["async"] = data["async"]
    filler: Any = None
    messages = data.get("messages") or []
    others: list[Any] = []
    if isinstance(messages, list):
        for m in messages:
            if (
                filler is None
                and isinstance(m, dict)
                and m.get("type") == "request-start"
                and not m.get("conditions")
            ):
                filler = _filler(m)
                rest = {k: v for k, v in m.items() if k not in ("type", "content", "contents")}
                if rest:
                    kept["request_start"] = rest
                if filler is not None:
                    continue
            others.append(m)
    if others:
        kept["messages"] = others
        kinds = sorted({str(m.get("type")) for m in others if isinstance(m, dict)})
        problems.append(
            Problem(
                "$.messages",
                f"voicefn speaks one filler line (request-start); {', '.join(kinds)} "
                "message(s) are kept for converting back but not spoken",
                "the LLM reads the result or error and answers in its own words",
                severity="warning",
            )
        )
    timeout = server.get("timeoutSeconds", DEFAULT_TIMEOUT_S)
    timeout_ms = round(timeout * 1000) if isinstance(timeout, int | float) else timeout
    headers = server.get("headers")
    name = fn.get("name")
    parameters = fn.get("parameters", {"type": "object", "properties": {}})
    props = parameters.get("properties") if isinstance(parameters, dict) else None
    doc = drop_none(
        {
            "name": name,
            "description": fn.get("description", ""),
            "phase": "in_call",
            "parameters": parameters,
            "filler": filler,
            "action": drop_none(
                {
                    "type": "http",
                    "method": "POST",
                    "url": server.get("url"),
                    "param": envelope(str(name), props if isinstance(props, dict) else {}),
                    "headers": {str(k): from_liquid(str(v)) for k, v in headers.items()}
                    if isinstance(headers, dict)
                    else headers,
                    "timeout_ms": timeout_ms,
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
        lost.append(f"phase {f.phase!r} (Vapi tools are called during the call)")
    if a.method != "POST" or a.param != envelope(f.name, f.properties):
        lost.append(
            f"the request ({a.method} with this param): Vapi POSTs its tool-calls message to "
            "server.url, so the server must read the arguments from "
            "message.toolCallList[0].arguments"
        )
    if a.pre_call_webhook_param is not None or a.pre_call_webhook_url is not None:
        lost.append("the pre-call webhook")
    headers = {k: to_liquid(v) for k, v in a.headers.items()}
    if a.token is not None:
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        headers["Authorization"] = a.token
    messages: list[Any] = []
    if f.filler is not None:
        start: dict[str, Any] = {"type": "request-start"}
        if isinstance(f.filler, str):
            start["content"] = to_liquid(f.filler)
        else:
            start["contents"] = [
                {"type": "text", "text": to_liquid(text), "language": lang}
                for lang, text in f.filler.items()
            ]
        start.update(kept.get("request_start") or {})
        messages.append(start)
    messages += kept.get("messages") or []
    function = drop_none(
        {
            "name": f.name,
            "description": f.description,
            "parameters": f.parameters,
            **(kept.get("function") or {}),
        }
    )
    server = drop_none(
        {
            "url": a.url,
            "timeoutSeconds": a.timeout_ms / 1000 if a.timeout_ms % 1000 else a.timeout_ms // 1000,
            "headers": headers or None,
            **(kept.get("server") or {}),
        }
    )
    doc: dict[str, Any] = {"type": "function"}
    if messages:
        doc["messages"] = messages
    doc["function"] = function
    if "async" in kept:
        doc["async"] = kept["async"]
    doc["server"] = server
    for key in KEPT_KEYS:
        if key in kept:
            doc[key] = kept[key]
    for key, value in kept.items():
        if key not in (*KEPT_KEYS, "function", "server", "messages", "request_start", "async"):
            doc[key] = value
    return doc, lost
