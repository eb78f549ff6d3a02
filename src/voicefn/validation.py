"""Validation that reports every problem at once, each with a JSON path, what was found and the fix.

Checks run on the canonical document (see :mod:`voicefn.spec`); a dialect passes a ``locate``
function that turns a canonical path into the path of the user's own file, so a Bolna user reads
``$.value.param.order_id``, not our internal names.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from pydantic import ValidationError

from .context import SYSTEM_VARIABLES
from .spec import (
    BUILTINS,
    HTTP_METHODS,
    NAME_PATTERN,
    PARAMETER_TYPES,
    PHASES,
    BuiltinAction,
    Function,
    HttpAction,
    McpAction,
)
from .templates import CONVERSIONS, Specifier, Variable, iter_placeholders, parse_string

Path = tuple[str | int, ...]
Locate = Callable[[Path], Path]
Severity = Literal["error", "warning"]

_NAME_RE = re.compile(NAME_PATTERN)
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
#: The description ``voicefn from-curl`` writes until a person says when to call the function.
FROM_CURL_TODO = "TODO: say when the agent should call this"


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


_SIMPLE_TYPES = frozenset({*PARAMETER_TYPES, "null"})
#: Keywords whose values this module can vouch for without the meta-schema; anything else (or a
#: value of an unexpected shape) goes through jsonschema, which says exactly what is wrong.
_PLAIN: dict[str, Callable[[Any], bool]] = {
    "type": lambda v: (
        (isinstance(v, str) and v in _SIMPLE_TYPES)
        or (
            isinstance(v, list)
            and all(isinstance(t, str) and t in _SIMPLE_TYPES for t in v)
            and len(set(v)) == len(v)
        )
    ),
    "description": _is_str,
    "title": _is_str,
    "format": _is_str,
    "pattern": _is_str,
    "default": lambda v: True,
    "enum": lambda v: isinstance(v, list),
    "const": lambda v: True,
    "examples": lambda v: isinstance(v, list),
    "required": lambda v: (
        isinstance(v, list) and all(isinstance(x, str) for x in v) and len(set(v)) == len(v)
    ),
    "minimum": _is_number,
    "maximum": _is_number,
    "exclusiveMinimum": _is_number,
    "exclusiveMaximum": _is_number,
    "minLength": _is_count,
    "maxLength": _is_count,
    "minItems": _is_count,
    "maxItems": _is_count,
    "uniqueItems": lambda v: isinstance(v, bool),
}


def _plainly_valid(schema: Any, depth: int = 0) -> bool:
    """True only when ``schema`` is certainly valid JSON Schema (the common shapes); False means
    "ask jsonschema", which is slower to import (this keeps ``voicefn validate`` quick)."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict) or depth > 8:
        return False
    for key, value in schema.items():
        if key in ("properties", "$defs"):
            if not isinstance(value, dict) or not all(
                _plainly_valid(v, depth + 1) for v in value.values()
            ):
                return False
        elif key in ("items", "additionalProperties"):
            if not _plainly_valid(value, depth + 1):
                return False
        elif key not in _PLAIN or not _PLAIN[key](value):
            return False
    return True


@functools.cache
def _meta_validator() -> Any:
    from jsonschema import Draft202012Validator  # only validation pays for it

    return Draft202012Validator(Draft202012Validator.META_SCHEMA)


def json_path(path: Iterable[str | int]) -> str:
    """``("value", "param", "order_id")`` -> ``$.value.param.order_id``; odd keys are quoted."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            out += f".{part}"
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt name, or None."""
    options = list(dict.fromkeys(c for c in candidates if c != name))
    for c in options:
        if c.lower() == name.lower():
            return c
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return close[0] if close else None


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a function document."""

    path: str
    message: str
    fix: str
    found: Any = None
    severity: Severity = "error"

    def __str__(self) -> str:
        found = (
            "" if self.found is None else f" (found {json.dumps(self.found, ensure_ascii=False)})"
        )
        return f"{self.severity}: {self.path}: {self.message}{found}. Fix: {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "path": self.path,
            "message": self.message,
            "found": self.found,
            "fix": self.fix,
        }


class FunctionValidationError(ValueError):
    """A function document has errors; ``problems`` lists all of them (warnings included)."""

    def __init__(self, problems: Sequence[Problem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        errors = [p for p in self.problems if p.severity == "error"]
        head = f"{source}: " if source else ""
        lines = "\n".join(f"  - {p}" for p in errors)
        super().__init__(f"{head}{len(errors)} problem(s) in function definition:\n{lines}")


@dataclass
class _Collector:
    locate: Locate
    problems: list[Problem] = field(default_factory=list)

    def add(
        self,
        path: Path,
        message: str,
        fix: str,
        found: Any = None,
        severity: Severity = "error",
    ) -> None:
        self.problems.append(Problem(json_path(self.locate(path)), message, fix, found, severity))


def _identity(path: Path) -> Path:
    return path


def validate_document(
    data: Any,
    *,
    locate: Locate = _identity,
    variables: Iterable[str] = (),
) -> tuple[Function | None, list[Problem]]:
    """Check a canonical document; return the Function (None if any error) and all problems.

    ``variables`` names the dynamic variables an agent declares, so ``{customer_name}`` is known.
    """
    out = _Collector(locate)
    if not isinstance(data, dict):
        out.add((), "a function must be a JSON object", "wrap the definition in { ... }", data)
        return None, out.problems
    _check_semantics(data, out, set(variables))
    function: Function | None = None
    try:
        function = Function.model_validate(data)
    except ValidationError as exc:
        seen = {p.path for p in out.problems if p.severity == "error"}
        for err in exc.errors():
            loc = _document_path(data, err["loc"])
            problem = _from_pydantic(loc, err, out.locate)
            if problem.path not in seen:
                out.problems.append(problem)
                seen.add(problem.path)
    if any(p.severity == "error" for p in out.problems):
        function = None
    return function, out.problems


def _document_path(data: Any, loc: Iterable[str | int]) -> Path:
    """Pydantic's error location without the names of union members ("http", "str"...): only
    the keys and indexes that exist in the document, plus a final missing key."""
    out: list[str | int] = []
    node = data
    parts = list(loc)
    for i, part in enumerate(parts):
        child = _child(node, part)
        if child is not _ABSENT:
            node = child
            out.append(part)
        elif (
            i == len(parts) - 1
            and isinstance(node, dict)
            and isinstance(part, str)
            and part not in _UNION_TAGS
        ):
            out.append(part)  # a missing field
    return tuple(out)


_ABSENT = object()


def _child(node: Any, key: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(key, _ABSENT)
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return node[key]
    return _ABSENT


_UNION_TAGS = frozenset(
    {
        "http",
        "builtin",
        "python",
        "javascript",
        "mcp",
        "str",
        "dict[str,str]",
        "int",
        "list",
        "dict",
    }
)


def _known_fields(loc: Path) -> list[str]:
    if len(loc) == 1:
        return list(Function.model_fields)
    if len(loc) == 2 and loc[0] == "action":
        return list(
            dict.fromkeys(
                [*HttpAction.model_fields, *BuiltinAction.model_fields, *McpAction.model_fields]
            )
        )
    return []


def _from_pydantic(loc: Path, err: Any, locate: Locate) -> Problem:
    kind = err["type"]
    found = err.get("input")
    path = json_path(locate(loc))
    if kind == "missing":
        return Problem(path, "required field is missing", f"add {path.rsplit('.', 1)[-1]!r}")
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else ""
        hint = did_you_mean(key, _known_fields(loc))
        fix = f"did you mean {hint!r}?" if hint else "remove it or correct its spelling"
        return Problem(path, f"unknown field {key!r}", fix, None)
    if isinstance(found, dict | list) and len(json.dumps(found, default=str)) > 200:
        found = None
    return Problem(
        path, err["msg"].rstrip("."), value_fix(kind, err.get("ctx") or {}, found), found
    )


#: What YAML 1.1 reads as a boolean when it is not quoted.
_YAML_BOOLEANS = "yes, no, on, off, y, n, true, false"


def value_fix(kind: str, ctx: dict[str, Any], found: Any) -> str:
    """The fix line for a value pydantic refused, fitted to why it was refused."""
    bounds = {
        "greater_than": ("greater than", "gt"),
        "greater_than_equal": ("at least", "ge"),
        "less_than": ("less than", "lt"),
        "less_than_equal": ("at most", "le"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        limit = ctx.get(key)
        return f"use a number {words} {limit}" if limit is not None else "use a number in range"
    if kind == "string_type" and isinstance(found, bool):
        return (
            f'write it as text; in YAML quote it ("{"yes" if found else "no"}"): '
            f"unquoted {_YAML_BOOLEANS} are read as true/false"
        )
    if kind == "string_type" and isinstance(found, int | float):
        return f'write it as text; in YAML quote it ("{found}")'
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "use a whole number, e.g. 5000"
    if kind in ("float_type", "float_parsing"):
        return "use a number, e.g. 0.5"
    if kind in ("bool_type", "bool_parsing"):
        return "use true or false"
    if kind in ("dict_type", "model_type"):
        return "use an object (key: value pairs)"
    if kind == "list_type":
        return "use a list, e.g. [a, b] (or one '- item' per line in YAML)"
    return "give a value of the expected type"


# ------------------------------------------------------------------------------------ rules


def _check_semantics(data: dict[str, Any], out: _Collector, variables: set[str]) -> None:
    name = data.get("name")
    if isinstance(name, str) and not _NAME_RE.fullmatch(name):
        fixed = re.sub(r"[^a-zA-Z0-9_-]+", "_", name.strip()).strip("_")[:64] or "my_function"
        out.add(
            ("name",),
            "name must be 1-64 letters, digits, '_' or '-' (no spaces)",
            f"use {fixed!r}",
            name,
        )
    phase = data.get("phase", "in_call")
    if phase not in PHASES:
        out.add(("phase",), "unknown phase", f"use one of {', '.join(PHASES)}", phase)
    description = data.get("description")
    if isinstance(description, bool | int | float):
        out.add(
            ("description",),
            "description must be text",
            value_fix("string_type", {}, description),
            description,
        )
    elif phase == "in_call" and (not isinstance(description, str) or not description.strip()):
        out.add(
            ("description",),
            "in-call functions need a description: it is how the LLM knows when to call them",
            "say when to call it, with synonyms, e.g. 'Use when the caller asks where their order is'",
            description,
        )
    if isinstance(description, str) and FROM_CURL_TODO in description:
        out.add(
            ("description",),
            "the description is still the TODO that from-curl wrote",
            "say when the agent should call it, e.g. 'Use when the caller asks where their order is'",
            description,
            "warning",
        )
    params = data.get("parameters", {"type": "object", "properties": {}})
    mapped = data.get("mapping") if phase == "post_call" else None
    properties = _check_parameters(params, out, set(mapped) if isinstance(mapped, dict) else set())
    _check_filler(data.get("filler"), out)
    action = data.get("action")
    if isinstance(action, dict):
        _check_action(action, properties, variables, out)
    if "store" in data:
        _check_store(data["store"], phase, action, out)
    if "mapping" in data:
        kind = action.get("type", "http") if isinstance(action, dict) else None
        _check_mapping(data["mapping"], phase, params, variables, out, kind)


def _check_parameters(
    params: Any, out: _Collector, mapped: set[str] | None = None
) -> dict[str, Any]:
    if not isinstance(params, dict):
        out.add(
            ("parameters",),
            "parameters must be a JSON Schema object",
            'use {"type": "object", "properties": {...}}',
            params,
        )
        return {}
    if params.get("type") != "object":
        out.add(
            ("parameters", "type"),
            "parameters must have type 'object'",
            'set "type": "object"',
            params.get("type"),
        )
    props = params.get("properties", {})
    if not isinstance(props, dict):
        props = {}
    for pname, prop in props.items():
        if not isinstance(prop, dict):
            continue
        ptype = prop.get("type")
        types = ptype if isinstance(ptype, list) else [ptype]
        for t in types:
            if t is None and "enum" not in prop and "anyOf" not in prop:
                out.add(
                    ("parameters", "properties", pname, "type"),
                    "parameter has no type",
                    f"add a type: one of {', '.join(PARAMETER_TYPES)}",
                )
            elif isinstance(t, str) and t not in (*PARAMETER_TYPES, "null"):
                hint = did_you_mean(t, PARAMETER_TYPES) or {
                    "float": "number",
                    "int": "integer",
                    "str": "string",
                    "bool": "boolean",
                    "dict": "object",
                    "list": "array",
                }.get(t)
                out.add(
                    ("parameters", "properties", pname, "type"),
                    f"unsupported parameter type {t!r}",
                    f"use {hint!r}" if hint else f"use one of {', '.join(PARAMETER_TYPES)}",
                    t,
                )
        if not prop.get("description") and pname not in (mapped or ()):  # no LLM reads those
            out.add(
                ("parameters", "properties", pname, "description"),
                "parameter has no description",
                "describe what the LLM should collect, e.g. 'The order ID, usually starts with ORD-'",
                severity="warning",
            )
    reported = {p.path for p in out.problems}
    for err in () if _plainly_valid(params) else _meta_validator().iter_errors(params):
        path = ("parameters", *err.absolute_path)
        if json_path(out.locate(path)) not in reported:
            out.add(path, f"not valid JSON Schema: {err.message}", "correct the schema keyword")
    required = params.get("required", [])
    if isinstance(required, list):
        for i, req in enumerate(required):
            if isinstance(req, str) and req not in props:
                hint = did_you_mean(req, props)
                fix = (
                    f"did you mean {hint!r}? Parameter names must match exactly"
                    if hint
                    else f"declare {req!r} under properties or remove it from required"
                )
                out.add(
                    ("parameters", "required", i),
                    f"required names {req!r}, which is not a declared property",
                    fix,
                    req,
                )
    return props


def _check_filler(filler: Any, out: _Collector) -> None:
    if isinstance(filler, str) and not filler.strip():
        out.add(
            ("filler",),
            "filler is empty",
            "remove it, or write what the agent says while the function runs",
        )
    elif isinstance(filler, dict):
        for lang, line in filler.items():
            if not isinstance(line, str) or not line.strip():
                out.add(
                    ("filler", lang),
                    "filler line is empty",
                    "write the line in that language or remove the entry",
                    line,
                )


def check_url(url: Any, path: Path, what: str) -> list[Problem]:
    """The problems of an absolute http(s) URL setting (``what`` names it in messages)."""
    out = _Collector(_identity)
    if not isinstance(url, str):
        out.add(path, f"{what} must be a URL string", "write e.g. https://api.example.com/v1", url)
    else:
        _check_url(url, path, out, what)
    return out.problems


def _check_url(url: Any, path: Path, out: _Collector, what: str) -> httpx.URL | None:
    if not isinstance(url, str):
        return None
    probe = re.sub(r"%\([^()]*\)[a-zA-Z]|\{[A-Za-z_][A-Za-z0-9_]*\}", "x", url)
    try:
        parsed = httpx.URL(probe)
        host = parsed.host  # decodes IDNA labels: an invalid one raises here
    except (httpx.InvalidURL, ValueError) as exc:
        out.add(
            path,
            f"{what} is not a valid URL: {exc}",
            "use an absolute URL such as https://api.example.com/orders",
            url,
        )
        return None
    if parsed.port is not None and not 0 < parsed.port <= 65535:
        out.add(
            path,
            f"{what} has the port {parsed.port}, outside 1-65535",
            "use a port from 1 to 65535, or none for the scheme's default (80/443)",
            url,
        )
        return None
    if parsed.scheme not in ("http", "https") or not host:
        out.add(
            path,
            f"{what} must be an absolute http(s) URL",
            "use an absolute URL such as https://api.example.com/orders",
            url,
        )
        return None
    if " " in url.strip():
        out.add(path, f"{what} contains a space", "percent-encode it as %20", url)
    return parsed


def _check_action(
    action: dict[str, Any], props: dict[str, Any], variables: set[str], out: _Collector
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
    if url is not None and _check_url(url, ("action", "url"), out, "url") is not None:
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
        _check_url(hook_url, ("action", "pre_call_webhook_url"), out, "pre_call_webhook_url")
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
                _check_placeholder(ph, ("action", key, *sub), props, variables, out)
                if isinstance(ph, Specifier):
                    used.add(ph.name)
    headers = action.get("headers") or {}
    if isinstance(headers, dict):
        for hname, value in headers.items():
            if not _HEADER_NAME_RE.fullmatch(str(hname)):
                out.add(
                    ("action", "headers", hname),
                    "invalid header name",
                    "use letters, digits and '-' only",
                    hname,
                )
            if isinstance(value, str):
                for part in parse_string(value):
                    if isinstance(part, Specifier):
                        out.add(
                            ("action", "headers", hname),
                            "headers cannot contain LLM arguments: nothing the LLM says may change a function's headers",
                            "move the value into param, or use a {context_variable}",
                            value,
                        )
                    elif isinstance(part, Variable):
                        _check_placeholder(
                            part, ("action", "headers", hname), props, variables, out
                        )
                if "\n" in value or "\r" in value:
                    out.add(
                        ("action", "headers", hname),
                        "header value contains a line break",
                        "remove the line break",
                        value,
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


def _check_mcp(action: dict[str, Any], variables: set[str], out: _Collector) -> None:
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
        and _check_url(url, ("action", "url"), out, "url") is not None
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
        for hname, value in headers.items():
            if not _HEADER_NAME_RE.fullmatch(str(hname)):
                out.add(
                    ("action", "headers", hname),
                    "invalid header name",
                    "use letters, digits and '-' only",
                    hname,
                )
            if not isinstance(value, str):
                continue
            for part in parse_string(value):
                if isinstance(part, Specifier):
                    out.add(
                        ("action", "headers", hname),
                        "headers cannot contain LLM arguments: nothing the LLM says may change a function's headers",
                        "use a {context_variable}",
                        value,
                    )
                elif isinstance(part, Variable):
                    _check_placeholder(part, ("action", "headers", hname), {}, variables, out)
            if "\n" in value or "\r" in value:
                out.add(
                    ("action", "headers", hname),
                    "header value contains a line break",
                    "remove the line break",
                    value,
                )
    hook_url = action.get("pre_call_webhook_url")
    if hook_url is not None:
        _check_url(hook_url, ("action", "pre_call_webhook_url"), out, "pre_call_webhook_url")


def _check_code(kind: str, action: dict[str, Any], out: _Collector) -> None:
    """Customer code is checked statically (never run here): its contract, line by line."""
    from .sandbox.contract import check_javascript, check_python

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
    action: dict[str, Any], props: dict[str, Any], variables: set[str], out: _Collector
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
                _check_placeholder(ph, ("action", key, *sub), props, variables, out)


def _check_placeholder(
    ph: Specifier | Variable,
    path: Path,
    props: dict[str, Any],
    variables: set[str],
    out: _Collector,
) -> None:
    known_vars = set(SYSTEM_VARIABLES) | variables
    if isinstance(ph, Variable):
        if ph.name in known_vars:
            return
        if ph.name in props:
            out.add(
                path,
                f"{ph.text} is a context variable placeholder, but {ph.name!r} is a parameter",
                f"use %({ph.name})s for parameters the LLM fills",
            )
            return
        hint = did_you_mean(ph.name, known_vars)
        if hint:
            out.add(
                path,
                f"unknown context variable {ph.text}",
                f"did you mean {{{hint}}}? Variable names must match exactly",
                ph.text,
            )
        else:
            out.add(
                path,
                f"{ph.text} is not a system variable, so every call must pass it as a dynamic variable",
                f"pass it per call (--var {ph.name}=...) or declare it in the agent's variables",
                severity="warning",
            )
        return
    if not ph.name:
        out.add(path, f"{ph.text} names no parameter", "write %(parameter_name)s", ph.text)
        return
    if ph.conv not in CONVERSIONS:
        out.add(
            path,
            f"{ph.text} has no supported format specifier",
            f"use %({ph.name})s for text, %({ph.name})i for integers or %({ph.name})f for numbers",
            ph.text,
        )
    if ph.name in props:
        declared = props[ph.name].get("type") if isinstance(props[ph.name], dict) else None
        if ph.json_type in ("integer", "number") and declared in (
            "string",
            "boolean",
            "array",
            "object",
        ):
            out.add(
                path,
                f"{ph.text} formats a number but {ph.name!r} is declared as {declared}",
                f"use %({ph.name})s, or declare {ph.name!r} as integer/number",
                ph.text,
                "warning",
            )
        return
    if ph.name in known_vars:
        return
    hint = did_you_mean(ph.name, [*props, *known_vars])
    fix = (
        f"did you mean %({hint})s? Parameter names must match exactly (case-sensitive)"
        if hint
        else f"declare {ph.name!r} under parameters.properties, or fix the placeholder"
    )
    out.add(path, f"{ph.text} names no declared parameter or context variable", fix, ph.text)


# ------------------------------------------------------------------------- store and mapping

#: A call variable's name: what ``{name}`` and ``variables.name`` can refer to.
VARIABLE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _check_store(store: Any, phase: Any, action: Any, out: _Collector) -> None:
    """``store: {variable: "<JMESPath>"}``: names a variable can have, expressions that parse."""
    if not isinstance(store, dict):
        out.add(
            ("store",),
            "store must be an object of variable names and JMESPath expressions",
            'write e.g. store: {order_status: "status", carrier: "shipment.carrier"}',
            store if isinstance(store, str | int | float | bool) else None,
        )
        return
    if phase == "post_call":
        out.add(
            ("store",),
            "a post-call function runs after the call: nothing is left to use stored values",
            "remove store, or map the values this function needs with mapping:",
        )
        return
    if isinstance(action, dict) and action.get("type") == "builtin":
        out.add(
            ("store",),
            "builtin functions return no response to store values from",
            "remove store",
        )
        return
    import jmespath
    from jmespath.exceptions import JMESPathError

    for name, expression in store.items():
        path: Path = ("store", str(name))
        if not VARIABLE_NAME_RE.fullmatch(str(name)):
            fixed = re.sub(r"[^A-Za-z0-9_]+", "_", str(name)).strip("_") or "value"
            if fixed[0].isdigit():
                fixed = f"v_{fixed}"
            out.add(
                path,
                "a variable name is letters, digits and '_', not starting with a digit",
                f"use {fixed[:64]!r}",
                name,
            )
        elif name in SYSTEM_VARIABLES:
            out.add(
                path,
                f"{name} is a system variable: the call sets it, a function cannot",
                f"store it under another name, e.g. 'stored_{name}'",
                name,
            )
        if not isinstance(expression, str) or not expression.strip():
            out.add(
                path,
                "the value is a JMESPath expression into the function's response, as text",
                'write e.g. "status", "items[0].id" or "length(items)"',
                expression if isinstance(expression, int | float | bool) else None,
            )
            continue
        try:
            jmespath.compile(expression)
        except JMESPathError as exc:
            detail = " ".join(str(exc).split())
            out.add(
                path,
                f"not a valid JMESPath expression: {detail}",
                "check the expression at jmespath.org (e.g. shipment.carrier, items[0].id; "
                'quote names with dashes: "order-id")',
                expression,
            )


@dataclass(frozen=True, slots=True)
class SourceType:
    """What a mapping source holds: a JSON Schema type (``None``: not known before the call),
    the allowed values of an enum, the item type of a list."""

    type: str | None = None
    enum: tuple[Any, ...] | None = None
    items: str | None = None

    def describe(self) -> str:
        if self.enum is not None:
            return "one of " + ", ".join(json.dumps(v) for v in self.enum)
        if self.type == "array" and self.items:
            return f"a list of {self.items}s"
        return {
            "string": "text",
            "integer": "an integer",
            "number": "a number",
            "boolean": "true/false",
            "array": "a list",
            "object": "an object",
            "transcript": "the transcript",
        }.get(self.type or "", "a value")


#: The facts of a finished call a post-call mapping reads as ``call.<name>``.
CALL_SOURCES: dict[str, SourceType] = {
    "id": SourceType("string"),
    "call_sid": SourceType("string"),
    "execution_id": SourceType("string"),
    "agent_id": SourceType("string"),
    "from_number": SourceType("string"),
    "to_number": SourceType("string"),
    "language": SourceType("string"),
    "started_at": SourceType("string"),
    "ended_at": SourceType("string"),
    "duration_s": SourceType("number"),
    "ended_by": SourceType("string", ("caller", "agent", "transfer", "system")),
    "transfer_number": SourceType("string"),
}
#: The roots a mapping source starts with.
SOURCE_ROOTS: tuple[str, ...] = ("call", "variables", "post_call", "transcript")
TRANSCRIPT = SourceType("transcript")


@dataclass(frozen=True, slots=True)
class MappingEntry:
    """One parameter's mapping: a source (``post_call.email``) or a static value."""

    source: str | None = None
    value: Any = None
    default: Any = None
    has_default: bool = False

    @property
    def root(self) -> str:
        return (self.source or "").split(".", 1)[0]

    @property
    def name(self) -> str | None:
        """The second part of the source (``email`` in ``post_call.email``)."""
        parts = (self.source or "").split(".")
        return parts[1] if len(parts) > 1 else None


def mapping_entry(raw: Any) -> MappingEntry | str:
    """A mapping value read; a message saying what is wrong with it otherwise."""
    if isinstance(raw, str):
        return MappingEntry(source=raw.strip())
    if raw is None or isinstance(raw, bool | int | float):
        return MappingEntry(value=raw)
    if isinstance(raw, dict):
        keys = set(raw)
        if keys == {"value"}:
            return MappingEntry(value=raw["value"])
        if "source" in keys and keys <= {"source", "default"}:
            if not isinstance(raw["source"], str):
                return "source must be text, e.g. post_call.email"
            return MappingEntry(
                source=raw["source"].strip(),
                default=raw.get("default"),
                has_default="default" in raw,
            )
        return (
            "an object here is {value: ...} (a static value) or {source: ..., default: ...}, "
            f"not one with {', '.join(sorted(map(str, keys))) or 'no keys'}"
        )
    return "write a source such as post_call.email, or a static value as {value: ...}"


def _check_mapping(
    mapping: Any,
    phase: Any,
    params: Any,
    variables: set[str],
    out: _Collector,
    kind: Any = "http",
) -> None:
    """The mapping's shape, what every document can check alone: parameter names, source roots,
    ``call.*`` names and types, required parameters left unfilled. ``variables.*`` and
    ``post_call.*`` need the agent (see :func:`check_mapping_sources`)."""
    if not isinstance(mapping, dict):
        out.add(
            ("mapping",),
            "mapping must be an object: parameter name -> where its value comes from",
            "write e.g. mapping: {phone: call.from_number, email: post_call.email}",
            mapping if isinstance(mapping, str | int | float | bool) else None,
        )
        return
    if phase != "post_call":
        out.add(
            ("mapping",),
            "mapping fills post-call functions' parameters; the LLM fills an in-call "
            "function's and the call context a pre-call function's",
            "set phase: post_call, or remove mapping",
            phase,
        )
        return
    props = params.get("properties") if isinstance(params, dict) else None
    props = props if isinstance(props, dict) else {}
    # Code receives every mapped value (its data object); a request only declared parameters.
    free = kind in ("javascript", "python") and not props
    for key, raw in mapping.items():
        path: Path = ("mapping", str(key))
        if not free and key not in props:
            hint = did_you_mean(str(key), props)
            out.add(
                path,
                f"{key!r} is not one of the function's parameters",
                f"did you mean {hint!r}? Parameter names must match exactly"
                if hint
                else f"map one of {', '.join(props)}, or declare {key!r} under parameters"
                if props
                else f"declare {key!r} under parameters: a request sends declared ones only",
                key,
            )
            continue
        entry = mapping_entry(raw)
        if isinstance(entry, str):
            out.add(path, "not a mapping value", entry, raw if isinstance(raw, str) else None)
            continue
        if entry.source is None:
            continue
        problem = _source_shape(entry.source)
        if problem is not None:
            message, fix = problem
            out.add(path, message, fix, entry.source)
            continue
        if entry.root == "call":
            found = CALL_SOURCES[entry.name or ""]
            mismatch = type_mismatch(found, props.get(key))
            if mismatch:
                out.add(path, f"{entry.source} is {found.describe()}, {mismatch}", _TYPE_FIX, raw)
        elif entry.root == "transcript":
            mismatch = type_mismatch(TRANSCRIPT, props.get(key))
            if mismatch:
                out.add(path, f"transcript is a list of turns or text, {mismatch}", _TYPE_FIX, raw)
    required = params.get("required") if isinstance(params, dict) else None
    filled = {*mapping, *SYSTEM_VARIABLES, *variables}
    for i, name in enumerate(required if isinstance(required, list) else []):
        if isinstance(name, str) and name in props and name not in filled:
            out.add(
                ("parameters", "required", i),
                f"required parameter {name!r} has no mapping, so the function would never run",
                f"map it (mapping: {{{name}: post_call.{name}}}, a call.* fact, a variable or "
                "{value: ...}), or make it optional",
                name,
            )


_TYPE_FIX = "map a source of the parameter's type, or change the parameter's type"


def _source_shape(source: str) -> tuple[str, str] | None:
    """What is wrong with a source's spelling, before knowing the agent: (message, fix)."""
    parts = source.split(".")
    root = parts[0]
    if root not in SOURCE_ROOTS:
        hint = did_you_mean(root, SOURCE_ROOTS)
        if hint is None and "." not in source:
            return (
                f"{source!r} is not a source; text here names where the value comes from",
                f"for a fixed text write {{value: {json.dumps(source)}}}; sources start with "
                + ", ".join(f"{r}." if r != "transcript" else r for r in SOURCE_ROOTS),
            )
        return (
            f"unknown source {source!r}",
            f"did you mean {'.'.join([hint, *parts[1:]])}?"
            if hint
            else "sources start with call., variables., post_call. or are transcript",
        )
    if root == "transcript":
        if len(parts) > 1:
            return ("transcript has no parts", "map transcript itself (a list of turns, or text)")
        return None
    if len(parts) < 2 or not parts[1]:
        return (f"{source!r} names no value", f"write {root}.<name>")
    if any(not p for p in parts):
        return (f"{source!r} has an empty part", "write names separated by single dots")
    if root == "call":
        name = parts[1]
        if name not in CALL_SOURCES:
            hint = did_you_mean(name, CALL_SOURCES)
            return (
                f"the call has no fact named {name!r}",
                f"did you mean call.{hint}?"
                if hint
                else f"use one of call.{', call.'.join(CALL_SOURCES)}",
            )
        if len(parts) > 2:
            return (f"call.{name} has no parts", f"map call.{name} itself")
    return None


def type_mismatch(source: SourceType, schema: Any) -> str | None:
    """Why a value of ``source`` cannot fill a parameter declared as ``schema`` (None: it can).

    Unknown types never mismatch. Numbers and true/false become text for a string parameter;
    an integer fills a number; the transcript fills text or a list."""
    if not isinstance(schema, dict) or source.type is None:
        return None
    declared = schema.get("type")
    wanted = (
        {declared}
        if isinstance(declared, str)
        else {t for t in declared if isinstance(t, str)}
        if isinstance(declared, list)
        else set()
    )
    wanted.discard("null")
    name = "/".join(sorted(wanted))
    if wanted:
        kind = source.type
        fits = (
            kind in wanted
            or (kind == "integer" and "number" in wanted)
            or (kind in ("integer", "number", "boolean") and "string" in wanted)
            or (kind == "transcript" and bool(wanted & {"string", "array"}))
        )
        if not fits:
            return f"but the parameter is declared as {name}"
        if kind == "array" and source.items and "array" in wanted:
            items = schema.get("items")
            item_type = items.get("type") if isinstance(items, dict) else None
            widened = source.items == "integer" and item_type == "number"
            if isinstance(item_type, str) and item_type != source.items and not widened:
                return f"but the parameter is a list of {item_type}s"
    allowed = schema.get("enum")
    if isinstance(allowed, list) and source.enum is not None:
        extra = [v for v in source.enum if v not in allowed]
        if extra:
            return (
                f"and {', '.join(json.dumps(v) for v in extra)} "
                "is not among the parameter's enum values"
            )
    return None


#: The built-in extras under ``post_call.*`` and the switch that turns each on.
_EXTRA_SWITCH = {"summary": "summary", "outcome": "outcome", "outcome_reason": "outcome"}


def check_mapping_sources(
    function: Function,
    *,
    variables: dict[str, SourceType],
    post_call: dict[str, SourceType],
) -> list[Problem]:
    """A post-call function's ``variables.*`` and ``post_call.*`` sources against what the agent
    declares: the call's variables (declared, stored by functions, ``--var``) and its post-call
    variables (with the extras it switched on). Paths are the function document's
    (``$.mapping.<parameter>``)."""
    out = _Collector(_identity)
    props = function.properties
    for key, raw in function.mapping.items():
        entry = mapping_entry(raw)
        if isinstance(entry, str) or entry.source is None or _source_shape(entry.source):
            continue  # reported with the function's own problems
        path: Path = ("mapping", key)
        name = entry.name or ""
        deep = entry.source.count(".") > 1
        if entry.root == "post_call":
            found = post_call.get(name)
            if found is None and name in _EXTRA_SWITCH:
                out.add(
                    path,
                    f"post_call.{name} is a built-in extra that is switched off",
                    f"switch it on in the agent: post_call: {{{_EXTRA_SWITCH[name]}: true}}",
                    entry.source,
                )
                continue
            if found is None:
                hint = did_you_mean(name, post_call)
                out.add(
                    path,
                    f"the agent declares no post-call variable {name!r}",
                    f"did you mean post_call.{hint}?"
                    if hint
                    else "declare it under post_call_variables (name, type, description)"
                    + (f"; declared: {', '.join(post_call)}" if post_call else ""),
                    entry.source,
                )
                continue
        elif entry.root == "variables":
            found = variables.get(name)
            if found is None:
                hint = did_you_mean(name, variables)
                if hint:
                    out.add(
                        path,
                        f"the agent has no variable {name!r}",
                        f"did you mean variables.{hint}? Variable names must match exactly",
                        entry.source,
                    )
                else:
                    out.add(
                        path,
                        f"{name!r} is not one of the agent's variables nor stored by a function: "
                        "every call (or a pre-call function) must set it",
                        f"declare it under variables (with a default), or store it from a "
                        f"function's response (store: {{{name}: ...}})",
                        entry.source,
                        "warning",
                    )
                continue
        else:
            continue
        if deep:
            continue  # a part of an object: its type is not known before the call
        mismatch = type_mismatch(found, props.get(key))
        if mismatch:
            severity: Severity = "error" if entry.root == "post_call" else "warning"
            out.add(
                path,
                f"{entry.source} is {found.describe()}, {mismatch}",
                _TYPE_FIX,
                entry.source,
                severity,
            )
    return out.problems
