"""The ``action``: an HTTP request, an MCP tool, customer code or a builtin, each by its rules."""

from __future__ import annotations

import re
from typing import Any

from ..spec import BUILTINS, HTTP_METHODS
from ..templates import Specifier, Variable, iter_placeholders, parse_string
from .hints import did_you_mean
from .placeholders import check_placeholder
from .problems import Collector, Path
from .urls import checked_url

_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def check_action(
    action: dict[str, Any], props: dict[str, Any], variables: set[str], out: Collector
) -> None:
    kind = action.get("type", "http")
    if kind == "builtin":
        _check_builtin(action, props, variables, out)
        return
    if kind in ("python", "javascript"):
        _check_code(kind, action, out)
        return
    if kind == "mcp":
        _check_mcp(action, variables, out)
        return
    if kind != "http":
        out.add(
            ("action", "type"),
            f"unsupported action type {kind!r}",
            "use 'http', 'builtin', 'python', 'javascript' or 'mcp'",
            kind,
        )
        return
    method = action.get("method")
    if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
        out.add(
            ("action", "method"),
            "unsupported HTTP method",
            f"use one of {', '.join(HTTP_METHODS)}",
            method,
        )
    url = action.get("url")
    if url is not None and checked_url(url, ("action", "url"), out, "url") is not None:
        authority = url.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0]
        if "%(" in authority or "{" in authority:
            out.add(
                ("action", "url"),
                "placeholders may only appear in the URL's path or query, never in its scheme, host or port",
                "write the host literally",
                url,
            )
    hook_url = action.get("pre_call_webhook_url")
    if hook_url is not None:
        checked_url(hook_url, ("action", "pre_call_webhook_url"), out, "pre_call_webhook_url")
        if action.get("pre_call_webhook_param") is None:
            out.add(
                ("action", "pre_call_webhook_url"),
                "no pre-call webhook fires: pre_call_webhook_param is the switch",
                "add pre_call_webhook_param (a JSON body template) or remove the URL",
                severity="warning",
            )

    used: set[str] = set()
    for key in ("url", "param", "pre_call_webhook_param"):
        if key in action:
            for sub, ph in iter_placeholders(action[key]):
                check_placeholder(ph, ("action", key, *sub), props, variables, out)
                if isinstance(ph, Specifier):
                    used.add(ph.name)
    headers = action.get("headers") or {}
    if isinstance(headers, dict):
        _check_headers(
            headers, props, variables, out, "move the value into param, or use a {context_variable}"
        )
        if action.get("api_token") and any(str(h).lower() == "authorization" for h in headers):
            out.add(
                ("action", "headers"),
                "both api_token and an Authorization header are set; api_token wins",
                "keep one of them",
                severity="warning",
            )
    if action.get("param") is not None:
        for pname in props:
            if pname not in used:
                out.add(
                    ("parameters", "properties", pname),
                    f"parameter {pname!r} is never sent: no %({pname})s in url or param",
                    f'add "{pname}": "%({pname})s" to param, or remove the parameter',
                    severity="warning",
                )


def _check_mcp(action: dict[str, Any], variables: set[str], out: Collector) -> None:
    """An MCP tool: one server (``url`` or ``command``), the tool's name, headers without LLM
    arguments. Nothing is contacted here."""
    url, command = action.get("url"), action.get("command")
    if url is None and command is None:
        out.add(
            ("action", "url"),
            "an MCP tool needs its server: url (streamable HTTP) or command (stdio)",
            "set url: https://mcp.example.com/mcp, or command: with args:",
        )
    elif url is not None and command is not None:
        out.add(
            ("action", "command"),
            "both url and command are set; an MCP server is reached one way",
            "keep url for a remote server, or command for a local process",
            command,
        )
    if (
        url is not None
        and checked_url(url, ("action", "url"), out, "url") is not None
        and re.search(r"%\(|\{[A-Za-z_]", url)
    ):
        out.add(
            ("action", "url"),
            "an MCP server URL is written literally: no placeholders",
            "write the URL as it is; put per-call values in headers as {variable}",
            url,
        )
    if command is not None and (not isinstance(command, str) or not command.strip()):
        out.add(("action", "command"), "command is empty", "name the program to run", command)
    tool = action.get("tool")
    if not isinstance(tool, str) or not tool.strip():
        out.add(
            ("action", "tool"),
            "the MCP tool's name is missing",
            "set tool: to the name the server lists (voicefn mcp tools shows them)",
            tool,
        )
    headers = action.get("headers") or {}
    if isinstance(headers, dict):
        if headers and url is None:
            out.add(
                ("action", "headers"),
                "headers only apply to a server reached by url",
                "remove them, or pass values to the command through env",
                severity="warning",
            )
        _check_headers(headers, {}, variables, out, "use a {context_variable}")
    hook_url = action.get("pre_call_webhook_url")
    if hook_url is not None:
        checked_url(hook_url, ("action", "pre_call_webhook_url"), out, "pre_call_webhook_url")


def _check_headers(
    headers: dict[Any, Any],
    props: dict[str, Any],
    variables: set[str],
    out: Collector,
    llm_fix: str,
) -> None:
    """Header names and values: a valid name, no LLM argument (``llm_fix`` says where it goes
    instead), known ``{variables}``, no line break."""
    for hname, value in headers.items():
        path: Path = ("action", "headers", hname)
        if not _HEADER_NAME_RE.fullmatch(str(hname)):
            out.add(path, "invalid header name", "use letters, digits and '-' only", hname)
        if not isinstance(value, str):
            continue
        for part in parse_string(value):
            if isinstance(part, Specifier):
                out.add(
                    path,
                    "headers cannot contain LLM arguments: nothing the LLM says may change a function's headers",
                    llm_fix,
                    value,
                )
            elif isinstance(part, Variable):
                check_placeholder(part, path, props, variables, out)
        if "\n" in value or "\r" in value:
            out.add(path, "header value contains a line break", "remove the line break", value)


def _check_code(kind: str, action: dict[str, Any], out: Collector) -> None:
    """Customer code is checked statically (never run here): its contract, line by line."""
    from ..sandbox.contract import check_javascript, check_python

    code, entry = action.get("code"), action.get("entrypoint")
    if not isinstance(code, str) or not isinstance(entry, str | None):
        return  # the model's own type errors report these
    check = check_python if kind == "python" else check_javascript
    _, problems = check(code, entrypoint=entry)
    for p in problems:
        where = f"line {p.line}: " if p.line else ""
        out.add(("action", "code"), f"{where}{p.message}", p.fix, severity=p.severity)


_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _check_builtin(
    action: dict[str, Any], props: dict[str, Any], variables: set[str], out: Collector
) -> None:
    kind = action.get("builtin")
    if kind not in BUILTINS:
        hint = did_you_mean(str(kind), BUILTINS)
        out.add(
            ("action", "builtin"),
            "unknown builtin",
            f"did you mean {hint!r}?" if hint else f"use one of {', '.join(BUILTINS)}",
            kind,
        )
        return
    numbers: list[tuple[Path, Any]] = [
        (("action", "transfer_number"), action.get("transfer_number"))
    ]
    numbers += [
        (("action", "allowed_numbers", i), n)
        for i, n in enumerate(action.get("allowed_numbers") or [])
    ]
    for path, number in numbers:
        if number is not None and not (isinstance(number, str) and _E164.match(number)):
            out.add(
                path,
                "not an E.164 phone number",
                "write it as +<country code><number>, e.g. +14155550100",
                number,
            )
    if kind == "transfer_call":
        if not action.get("transfer_number") and not action.get("allowed_numbers"):
            out.add(
                ("action", "transfer_number"),
                "a transfer needs a destination the operator chose",
                "set transfer_number, or allowed_numbers plus a 'number' parameter the LLM picks from",
            )
        if (
            action.get("allowed_numbers")
            and not action.get("transfer_number")
            and "number" not in props
        ):
            out.add(
                ("parameters", "properties"),
                "allowed_numbers needs a 'number' parameter for the LLM to choose with",
                'declare "number": {"type": "string", "enum": [...]}',
            )
    message = action.get("message")
    if kind == "send_sms" and (not isinstance(message, str) or not message.strip()):
        out.add(
            ("action", "message"),
            "send_sms needs a message template",
            'set message, e.g. "Your booking %(booking_id)s is confirmed"',
        )
    for key in ("message", "pre_call_webhook_param"):
        if key in action:
            for sub, ph in iter_placeholders(action[key]):
                check_placeholder(ph, ("action", key, *sub), props, variables, out)
