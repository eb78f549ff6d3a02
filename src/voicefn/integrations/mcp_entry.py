"""An agent's ``{mcp: {...}}`` entry: check it, list the server's tools, make them functions.

    functions:
      - mcp:
          url: https://mcp.example.com/mcp        # or command: + args: (+ env:, cwd:)
          headers: {Authorization: "Bearer {mcp_token}"}   # {variable} from the agent's variables
          allowed_tools: [search_orders, get_order]        # default: every tool
          filler: One moment, let me look that up.
          timeout_ms: 8000
          prefix: shop_                                    # function names: shop_<tool>

Checking the entry needs nothing installed and sends nothing; listing the tools needs the ``mcp``
extra and connects (through the egress policy, or by starting the command where allowed).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..egress import EgressDenied, EgressPolicy
from ..spec import DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS
from ..templates import VARIABLE_RE
from ..validation import Problem, check_url, did_you_mean, json_path

__all__ = [
    "ENTRY_KEYS",
    "McpEntry",
    "entry_functions",
    "functions_from_server",
    "load_entry",
    "parse_entry",
]

ENTRY_KEYS = (
    "url",
    "headers",
    "command",
    "args",
    "env",
    "cwd",
    "allowed_tools",
    "filler",
    "timeout_ms",
    "prefix",
)
_NAME_BAD = re.compile(r"[^a-zA-Z0-9_-]+")
_T = TypeVar("_T")


@dataclass(frozen=True)
class McpEntry:
    """A checked ``mcp`` entry of an agent's ``functions`` list."""

    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    allowed_tools: list[str] | None = None
    filler: str | dict[str, str] | None = None
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    prefix: str = ""

    @property
    def label(self) -> str:
        return self.url or " ".join([self.command or "", *self.args]).strip()


def _p(path: tuple[str | int, ...], message: str, fix: str, found: Any = None) -> Problem:
    return Problem(json_path(("mcp", *path)), message, fix, found)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def parse_entry(data: Any) -> tuple[McpEntry | None, list[Problem]]:
    """Check the value of an ``mcp`` key; paths start at ``$.mcp``. Nothing is contacted."""
    if not isinstance(data, dict):
        return None, [
            Problem(
                "$.mcp",
                "mcp must be an object naming the server",
                "write mcp: {url: https://.../mcp} or mcp: {command: ..., args: [...]}",
                data if not isinstance(data, dict | list) else None,
            )
        ]
    problems: list[Problem] = []
    for key in data:
        if key not in ENTRY_KEYS:
            hint = did_you_mean(str(key), ENTRY_KEYS)
            fix = f"did you mean {hint!r}?" if hint else f"use one of {', '.join(ENTRY_KEYS)}"
            problems.append(_p((str(key),), f"unknown mcp key {key!r}", fix))
    url, command = data.get("url"), data.get("command")
    if url is None and command is None:
        problems.append(
            _p(
                (),
                "an MCP server needs url (streamable HTTP) or command (a local process over stdio)",
                "add url: https://mcp.example.com/mcp, or command: with args:",
            )
        )
    elif url is not None and command is not None:
        problems.append(
            _p(("command",), "both url and command are set", "keep one of them", command)
        )
    if url is not None:
        problems += [
            Problem(json_path(("mcp", "url")), p.message, p.fix, p.found)
            for p in check_url(url, ("url",), "url")
        ]
    if command is not None and not (isinstance(command, str) and command.strip()):
        problems.append(
            _p(("command",), "command must name a program", "e.g. command: npx", command)
        )
    checks: list[tuple[str, Callable[[Any], bool], str]] = [
        ("args", _strings, "a list of strings, e.g. [-y, '@scope/server']"),
        ("env", _string_map, "an object of NAME: value strings"),
        ("headers", _string_map, "an object of Header-Name: value strings"),
        ("allowed_tools", _strings, "a list of tool names"),
        ("cwd", lambda v: isinstance(v, str), "a folder path"),
        (
            "prefix",
            lambda v: isinstance(v, str) and not _NAME_BAD.search(v),
            "letters, digits, _ or -",
        ),
    ]
    for key, ok, what in checks:
        if key in data and data[key] is not None and not ok(data[key]):
            problems.append(_p((key,), f"{key} must be {what}", f"write {key} as {what}"))
    filler = data.get("filler")
    if filler is not None and not (
        (isinstance(filler, str) and filler.strip()) or (_string_map(filler) and filler)
    ):
        problems.append(
            _p(
                ("filler",),
                "filler must be a line of text or {language: line}",
                "e.g. filler: One moment.",
            )
        )
    timeout = data.get("timeout_ms", DEFAULT_TIMEOUT_MS)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int)
        or not 0 < timeout <= MAX_TIMEOUT_MS
    ):
        problems.append(
            _p(
                ("timeout_ms",),
                f"timeout_ms must be a whole number from 1 to {MAX_TIMEOUT_MS}",
                "e.g. timeout_ms: 8000",
                timeout,
            )
        )
    headers = data.get("headers") or {}
    if isinstance(headers, dict) and headers and url is None:
        problems.append(
            _p(
                ("headers",),
                "headers only apply to a server reached by url",
                "pass values to a command through env",
            )
        )
    if problems:
        return None, problems
    return (
        McpEntry(
            url=url,
            headers=dict(headers),
            command=command,
            args=list(data.get("args") or []),
            env=dict(data.get("env") or {}),
            cwd=data.get("cwd"),
            allowed_tools=list(data["allowed_tools"])
            if data.get("allowed_tools") is not None
            else None,
            filler=filler,
            timeout_ms=timeout,
            prefix=data.get("prefix") or "",
        ),
        [],
    )


def render_headers(
    headers: Mapping[str, str], variables: Mapping[str, Any]
) -> tuple[dict[str, str], list[str]]:
    """Headers with ``{variable}`` filled; also the names of variables that are not set."""
    missing: list[str] = []
    out: dict[str, str] = {}
    for name, value in headers.items():

        def fill(m: re.Match[str]) -> str:
            key = m.group("name")
            if key in variables and variables[key] is not None:
                return str(variables[key])
            missing.append(key)
            return m.group(0)

        out[name] = VARIABLE_RE.sub(fill, value)
    return out, missing


def _inline(schema: Any, root: Any, seen: tuple[str, ...] = ()) -> Any:
    """``schema`` with local ``$ref``s replaced by what they point to (a cycle stays a ref)."""
    from ..dialects.openapi import inline_refs

    return inline_refs(schema, root, seen)


def _parameters(schema: Any) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {"type": "object", "properties": {}}
    out = _inline(copy.deepcopy(schema), schema)
    for key in ("$defs", "definitions", "$schema"):
        out.pop(key, None)
    out.setdefault("type", "object")
    if out.get("type") == "object":
        out.setdefault("properties", {})
    return dict(out)


def function_name(tool: str, prefix: str = "") -> str:
    """A voicefn name (``[a-zA-Z0-9_-]{1,64}``) for an MCP tool name (which may hold dots)."""
    name = _NAME_BAD.sub("_", f"{prefix}{tool}").strip("_") or "tool"
    return name[:64]


def functions_from_server(
    entry: McpEntry, tools: list[Any]
) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Canonical function documents for the server's tools (``mcp_types.Tool``), only
    ``allowed_tools`` when given; problems for allowed tools the server does not have."""
    problems: list[Problem] = []
    by_name = {t.name: t for t in tools}
    wanted = entry.allowed_tools if entry.allowed_tools is not None else list(by_name)
    for i, name in enumerate(wanted):
        if name not in by_name:
            hint = did_you_mean(name, by_name)
            fix = (
                f"did you mean {hint!r}?"
                if hint
                else f"the server's tools: {', '.join(by_name) or 'none'}"
            )
            problems.append(
                Problem(
                    json_path(("mcp", "allowed_tools", i)),
                    f"{entry.label} has no tool {name!r}",
                    fix,
                    name,
                )
            )
    action_base: dict[str, Any] = {"type": "mcp", "timeout_ms": entry.timeout_ms}
    if entry.url is not None:
        action_base |= {"url": entry.url, "headers": dict(entry.headers)}
    else:
        action_base |= {"command": entry.command, "args": list(entry.args), "env": dict(entry.env)}
        if entry.cwd is not None:
            action_base["cwd"] = entry.cwd
    docs: list[dict[str, Any]] = []
    for name in wanted:
        tool = by_name.get(name)
        if tool is None:
            continue
        title = tool.title or (tool.annotations.title if tool.annotations else None)
        description = (tool.description or title or "").strip()
        if not description:
            description = f"Use the {tool.name} tool."
            problems.append(
                Problem(
                    "$.mcp",
                    f"the server gives the tool {tool.name!r} no description; the LLM reads {description!r}",
                    "ask the server's author for a description, or leave the tool out with allowed_tools",
                    severity="warning",
                )
            )
        doc: dict[str, Any] = {
            "name": function_name(tool.name, entry.prefix),
            "description": description,
            "parameters": _parameters(tool.input_schema),
            "action": {**action_base, "tool": tool.name},
        }
        if entry.filler is not None:
            doc["filler"] = entry.filler
        hints = tool.annotations
        if hints is not None and (hints.read_only_hint or hints.idempotent_hint):
            doc["allow_repeat"] = True
        docs.append(doc)
    return docs, problems


async def entry_functions(
    entry: McpEntry,
    *,
    egress: EgressPolicy,
    allow_commands: bool = False,
    variables: Mapping[str, Any] | None = None,
    within_s: float | None = None,
) -> tuple[list[dict[str, Any]], list[Problem]]:
    """List the entry's server's tools and make them function documents; a server that cannot
    be reached is one problem (at ``$.mcp.url`` or ``$.mcp.command``) saying why."""
    from .mcp_client import CONNECT_TIMEOUT_S, CommandNotAllowed, ServerAddress, list_tools

    headers, missing = render_headers(entry.headers, variables or {})
    if missing:
        return [], [
            Problem(
                "$.mcp.headers",
                f"the headers need {', '.join('{' + m + '}' for m in dict.fromkeys(missing))}, "
                "which the agent does not set, so its tools cannot be listed",
                "give it a default under the agent's variables (or --var name=...)",
            )
        ]
    server = ServerAddress(
        url=entry.url,
        headers=tuple(sorted(headers.items())),
        command=entry.command,
        args=tuple(entry.args),
        env=tuple(sorted(entry.env.items())),
        cwd=entry.cwd,
    )
    where = "$.mcp.url" if entry.url is not None else "$.mcp.command"
    try:
        tools = await list_tools(
            server, egress, allow_commands=allow_commands, within_s=within_s or CONNECT_TIMEOUT_S
        )
    except EgressDenied as exc:
        return [], [
            Problem(
                where,
                f"the egress policy refuses the MCP server: {exc}",
                "allow it: --allow HOST, VOICEFN_ALLOW=HOST, or VOICEFN_ALLOW_PRIVATE_NETWORK=1 "
                "for a local server (Executor(allow=...) / EgressPolicy in Python)",
            )
        ]
    except CommandNotAllowed as exc:
        return [], [
            Problem(
                where,
                str(exc),
                "if you trust this agent file, allow commands: VOICEFN_ALLOW_MCP_COMMANDS=1 "
                "(allow_mcp_commands=True in Python)",
                entry.label,
            )
        ]
    except Exception as exc:
        return [], [
            Problem(
                where,
                f"cannot list the tools of {entry.label}: {_why(exc)}",
                "check that the server is running and the URL (or command) is right",
            )
        ]
    return functions_from_server(entry, tools)


def _why(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_blocking(factory: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to completion from synchronous code, even inside a running event loop
    (then on a thread of its own, blocking the caller until it is done)."""

    async def main() -> _T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="voicefn-mcp") as pool:
        return pool.submit(asyncio.run, main()).result()


def load_entry(
    data: Any,
    *,
    egress: EgressPolicy,
    allow_commands: bool = False,
    variables: Mapping[str, Any] | None = None,
) -> tuple[McpEntry | None, list[dict[str, Any]], list[Problem]]:
    """Check an entry and list its server's tools, from synchronous code (agent loading)."""
    entry, problems = parse_entry(data)
    if entry is None:
        return None, [], problems
    try:
        from . import mcp_client  # noqa: F401 - the extra is needed from here on
    except ImportError as exc:
        return (
            entry,
            [],
            [
                Problem(
                    "$.mcp", f"MCP servers need the mcp extra: {exc}", 'pip install "voicefn[mcp]"'
                )
            ],
        )
    docs, more = run_blocking(
        lambda: entry_functions(
            entry, egress=egress, allow_commands=allow_commands, variables=variables
        )
    )
    return entry, docs, problems + more
