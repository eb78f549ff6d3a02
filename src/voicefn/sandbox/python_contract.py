"""The contract of Python customer code (pre-call and in-call functions), checked on the
:mod:`ast` only: nothing here executes, imports, compiles or ``exec``\\s the code.

The sandbox calls ``await entrypoint(ctx, **arguments)``:

* the entrypoint is the top-level ``async def`` named ``entrypoint``, or the only one;
* its first parameter is ``ctx: RunContext``; every other one is annotated with a JSON type
  (see :mod:`voicefn.sandbox.python_schema`; ``Any`` is a warning: an untyped JSON value);
* no ``*args``, ``**kwargs`` or positional-only parameters (arguments are passed by name);
  keyword-only parameters are fine;
* ``-> dict`` (or ``dict[str, ...]``), and a docstring whose first paragraph is the function's
  description and whose Google-style ``Args:`` section describes each parameter;
* defaults are JSON literals; they become ``default`` and the parameter is not required.

``X | None`` / ``Optional[X]`` is never required. Its schema allows ``null`` and says
``"default": null``: when the LLM leaves out such a parameter that has no Python default, the
sandbox must pass ``None`` (fill every omitted argument from its schema ``default``).

An optional module-level ``__voicefn__ = {...}`` literal sets ``phase`` (``pre_call`` or
``in_call``, the default), ``filler``, ``name``, ``entrypoint`` (the ``async def`` to call when
the file has several), ``timeout_ms`` and ``memory_mb``.

There is no import policy: the sandbox is the boundary. Errors only the compiler finds (``return``
outside a function, ...) surface when the sandbox loads the code.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

from ..spec import MAX_TIMEOUT_MS, NAME_PATTERN
from ..validation import did_you_mean
from .problems import CodeProblem, Problems
from .python_docstring import parse_docstring
from .python_schema import (
    ALLOWED_TYPES,
    ANY_SCHEMA,
    Unsupported,
    annotation_schema,
    is_dict_annotation,
    is_run_context,
    literal,
    unparse,
)

PYTHON_PHASES: tuple[str, ...] = ("pre_call", "in_call")
SETTINGS: tuple[str, ...] = ("phase", "filler", "name", "entrypoint", "timeout_ms", "memory_mb")
MEMORY_MB_MIN, MEMORY_MB_MAX = 32, 2048

_NAME_RE = re.compile(NAME_PATTERN)
_Def = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class PythonParameter:
    """One parameter the LLM fills."""

    name: str
    annotation: str  #: as written
    schema: dict[str, Any]  #: its JSON Schema, description and default included
    required: bool
    line: int
    description: str | None = None
    has_default: bool = False  #: a Python default (``default``); else omitted means None
    default: Any = None


@dataclass(frozen=True)
class PythonSignature:
    """What a valid entrypoint declares."""

    name: str  #: the function's name (``__voicefn__["name"]`` or the entrypoint's)
    entrypoint: str  #: the ``async def`` the sandbox calls
    line: int
    description: str
    parameters: tuple[PythonParameter, ...]
    settings: dict[str, Any] = field(default_factory=dict)  #: from ``__voicefn__``

    @property
    def phase(self) -> str:
        return str(self.settings.get("phase", "in_call"))

    @property
    def schema(self) -> dict[str, Any]:
        """The Function's ``parameters``: properties in signature order."""
        return {
            "type": "object",
            "properties": {p.name: p.schema for p in self.parameters},
            "required": [p.name for p in self.parameters if p.required],
        }


def check_python(
    code: str, *, entrypoint: str | None = None
) -> tuple[PythonSignature | None, list[CodeProblem]]:
    """Check Python code against the contract; the signature (None if any error) and all
    problems, sorted by line. Never runs the code."""
    out = Problems()
    tree = _parse(code, out)
    if tree is None:
        return None, out.result()
    settings = _settings(tree, out)
    fn = _entry(tree, entrypoint or settings.get("entrypoint"), out)
    if fn is None:
        return None, out.result()
    for deco in fn.decorator_list:
        out.warning(
            deco.lineno,
            f"decorator @{unparse(deco)}: the sandbox calls the function as written",
            "remove the decorator; one that changes the signature or result breaks the contract",
        )
    doc = ast.get_docstring(fn, clean=True)
    summary, described = parse_docstring(doc or "")
    if doc is None:
        out.error(
            fn.lineno,
            f"{fn.name!r} has no docstring: its first line tells the LLM when to call it",
            'add """Summary of when to call it.\\n\\nArgs:\\n    name: what it is\\n"""',
        )
    elif not summary:
        report = out.error if settings.get("phase", "in_call") == "in_call" else out.warning
        report(
            fn.body[0].lineno,
            "the docstring has no summary: its first paragraph is the function's description",
            "start the docstring with when to call it, e.g. 'Get the weather for a city.'",
        )
    params = _parameters(fn, described, out)
    if doc is not None:
        _check_described(fn, params, described, out)
    _check_returns(fn, out)
    if "name" not in settings and not _NAME_RE.fullmatch(fn.name):
        out.error(
            fn.lineno,
            _invalid_name(fn.name),
            'rename it, or set __voicefn__ = {"name": "my_function"}',
        )
    if out.failed:
        return None, out.result()
    signature = PythonSignature(
        name=settings.get("name", fn.name),
        entrypoint=fn.name,
        line=fn.lineno,
        description=summary,
        parameters=tuple(params),
        settings=settings,
    )
    return signature, out.result()


def python_function(
    code: str, *, entrypoint: str | None = None, name: str | None = None
) -> tuple[dict[str, Any] | None, list[CodeProblem]]:
    """A canonical voicefn function document for Python code (ready for
    :func:`voicefn.validation.validate_document`), or None and the problems."""
    signature, problems = check_python(code, entrypoint=entrypoint)
    if name is not None and not _NAME_RE.fullmatch(name):
        problems.append(
            CodeProblem(None, _invalid_name(name), "use letters, digits, '_' or '-' only")
        )
        return None, problems
    if signature is None:
        return None, problems
    doc: dict[str, Any] = {
        "name": name or signature.name,
        "description": signature.description,
        "phase": signature.phase,
        "parameters": signature.schema,
    }
    if "filler" in signature.settings:
        doc["filler"] = signature.settings["filler"]
    action: dict[str, Any] = {"type": "python", "code": code, "entrypoint": signature.entrypoint}
    for key in ("timeout_ms", "memory_mb"):
        if key in signature.settings:
            action[key] = signature.settings[key]
    doc["action"] = action
    return doc, problems


def _invalid_name(name: str) -> str:
    return f"{name!r} is not a valid function name (1-64 letters, digits, '_' or '-')"


def _parse(code: str, out: Problems) -> ast.Module | None:
    if out.too_long(code, "keep the function small; fetch large data at run time"):
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            tree = ast.parse(code, filename="<code>")
        except SyntaxError as exc:
            where = f" (column {exc.offset})" if exc.offset else ""
            text = (exc.text or "").strip()
            text = text if len(text) <= 80 else text[:77] + "..."
            out.error(
                exc.lineno,
                f"syntax error: {exc.msg}{where}",
                f"correct the code at {text!r}" if text else "correct the syntax",
            )
            return None
        except (ValueError, RecursionError, MemoryError) as exc:
            out.error(None, f"the code cannot be parsed: {exc or 'too complex'}", "simplify it")
            return None
    for w in caught:
        if issubclass(w.category, SyntaxWarning | DeprecationWarning):
            out.warning(
                w.lineno or None, str(w.message), "correct it (e.g. use a raw string r'...')"
            )
    return tree


def _settings(tree: ast.Module, out: Problems) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    first: int | None = None
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets: list[ast.expr] = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        else:
            continue
        if not any(isinstance(t, ast.Name) and t.id == "__voicefn__" for t in targets):
            continue
        if first is not None:
            out.error(node.lineno, f"__voicefn__ is set again (first at line {first})", "keep one")
            continue
        first = node.lineno
        value = None if isinstance(node, ast.AugAssign) else node.value
        ok, data = literal(value)
        if isinstance(node, ast.AugAssign) or not ok or not isinstance(data, dict):
            out.error(
                node.lineno,
                "__voicefn__ must be one literal dict",
                'write e.g. __voicefn__ = {"phase": "in_call", "filler": "One moment..."}',
            )
            continue
        lines: dict[str, int] = {}
        if isinstance(value, ast.Dict):
            for k in value.keys:
                if isinstance(k, ast.Constant) and isinstance(k.value, str):
                    lines[k.value] = k.lineno
        for key, item in data.items():
            if _check_setting(key, item, lines.get(key, node.lineno), out):
                settings[key] = item
    return settings


def _check_setting(key: str, value: Any, line: int, out: Problems) -> bool:
    problem: tuple[str, str] | None = None
    if key not in SETTINGS:
        hint = did_you_mean(key, SETTINGS)
        fix = f"did you mean {hint!r}?" if hint else f"use only {', '.join(SETTINGS)}"
        if key == "description":
            fix = "the description is the docstring's first paragraph"
        elif key == "parameters":
            fix = "the parameters come from the function's signature"
        problem = (f"unknown __voicefn__ key {key!r}", fix)
    elif key == "phase" and value not in PYTHON_PHASES:
        fix = "use 'pre_call' or 'in_call'"
        if value == "post_call":
            fix = "post-call functions are JavaScript (async function name(data)); " + fix
        problem = (f"phase {value!r} is not a Python phase", fix)
    elif key == "filler" and not _valid_filler(value):
        problem = (
            "filler must be a non-empty string or a {language: line} dict of them",
            'e.g. "filler": "One moment please." or {"en": "One moment.", "hi": "..."}',
        )
    elif key == "name" and not (isinstance(value, str) and _NAME_RE.fullmatch(value)):
        problem = (
            f"name {value!r} is not valid (1-64 letters, digits, '_' or '-')",
            "use e.g. 'get_weather'",
        )
    elif key == "entrypoint" and not (isinstance(value, str) and value.isidentifier()):
        problem = (
            f"entrypoint {value!r} is not a function name",
            "write the name of a top-level async def, e.g. 'check_stock'",
        )
    elif key == "timeout_ms" and not _int_in(value, 1, MAX_TIMEOUT_MS):
        problem = (f"timeout_ms must be an integer in 1..{MAX_TIMEOUT_MS}", "e.g. 5000")
    elif key == "memory_mb" and not _int_in(value, MEMORY_MB_MIN, MEMORY_MB_MAX):
        problem = (f"memory_mb must be an integer in {MEMORY_MB_MIN}..{MEMORY_MB_MAX}", "e.g. 256")
    if problem is not None:
        out.error(line, *problem)
    return problem is None


def _valid_filler(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(v, str) and v.strip() for v in value.values())
    )


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _entry(tree: ast.Module, entrypoint: str | None, out: Problems) -> _Def | None:
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    template = "async def name(ctx: RunContext, ...) -> dict:"
    if entrypoint is not None:
        named = [d for d in defs if d.name == entrypoint]
        if not named:
            hint = did_you_mean(entrypoint, [d.name for d in defs])
            out.error(
                None,
                f"no top-level function named {entrypoint!r}",
                f"did you mean {hint!r}?"
                if hint
                else f"define {template.replace('name', entrypoint, 1)}",
            )
            return None
        if len(named) > 1:
            out.error(
                named[-1].lineno,
                f"{entrypoint!r} is defined {len(named)} times (lines "
                f"{', '.join(str(d.lineno) for d in named)})",
                "keep one definition",
            )
        fn = named[-1]
    else:
        asyncs = [d for d in defs if isinstance(d, ast.AsyncFunctionDef)]
        listing = ", ".join(f"{d.name} (line {d.lineno})" for d in asyncs or defs)
        if len(asyncs) > 1:
            out.error(
                asyncs[1].lineno,
                f"several top-level async functions: {listing}",
                f'name the entrypoint: __voicefn__ = {{"entrypoint": "{asyncs[0].name}"}}, '
                "or keep one top-level async def (helpers: plain def)",
            )
            return None
        if asyncs:
            fn = asyncs[0]
        elif len(defs) == 1:
            fn = defs[0]
        else:
            out.error(
                None,
                f"no top-level async def (found {listing})" if defs else "no function found",
                f"define the entrypoint as {template}",
            )
            return None
    if isinstance(fn, ast.FunctionDef):
        out.error(
            fn.lineno,
            f"{fn.name!r} must be 'async def': the agent awaits it",
            f"write 'async def {fn.name}(...)'",
        )
    return fn


def _parameters(fn: _Def, described: dict[str, str], out: Problems) -> list[PythonParameter]:
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    defaults: dict[str, ast.expr] = {}
    for p, d in zip(positional[len(positional) - len(a.defaults) :], a.defaults, strict=True):
        defaults[p.arg] = d
    for p, kd in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        if kd is not None:
            defaults[p.arg] = kd
    everyone = [*positional, *a.kwonlyargs]
    ctx: ast.arg | None = None
    first = positional[0] if positional else None
    if first is not None and (first.arg == "ctx" or is_run_context(first.annotation)):
        ctx = first
        if first.arg != "ctx":
            out.error(
                first.lineno,
                f"the first parameter must be named ctx, not {first.arg!r}",
                "rename it: ctx: RunContext",
            )
        if not is_run_context(first.annotation):
            found = unparse(first.annotation) if first.annotation else "no annotation"
            out.error(
                first.lineno,
                f"ctx must be annotated RunContext (found {found})",
                "write ctx: RunContext",
            )
        if first.arg in defaults:
            out.error(first.lineno, "ctx must not have a default", "write ctx: RunContext")
    else:
        ctx = next((p for p in everyone if p.arg == "ctx" or is_run_context(p.annotation)), None)
        if ctx is not None:
            out.error(
                ctx.lineno, "ctx must be the first parameter", "move 'ctx: RunContext' to the front"
            )
        else:
            out.error(
                first.lineno if first is not None else fn.lineno,
                "the first parameter must be 'ctx: RunContext'",
                f"add it: async def {fn.name}(ctx: RunContext, ...)",
            )
    if a.vararg is not None:
        out.error(
            a.vararg.lineno,
            f"*{a.vararg.arg} is not allowed: the LLM sends named arguments",
            "declare each argument as a named, annotated parameter",
        )
    if a.kwarg is not None:
        out.error(
            a.kwarg.lineno,
            f"**{a.kwarg.arg} is not allowed: every argument must be declared",
            "declare each argument as a named, annotated parameter",
        )
    posonly = [p for p in a.posonlyargs if p is not ctx]
    if posonly:
        out.error(
            posonly[0].lineno,
            f"{', '.join(p.arg for p in posonly)} {'is' if len(posonly) == 1 else 'are'} "
            "positional-only: the sandbox passes arguments by name",
            "remove the '/'",
        )
    params: list[PythonParameter] = []
    seen: set[str] = set()
    for p in everyone:
        if p.arg in seen:
            out.error(p.lineno, f"parameter {p.arg!r} is declared twice", "rename one of them")
            continue
        seen.add(p.arg)
        if p is ctx:
            continue
        param = _parameter(p, defaults.get(p.arg), described.get(p.arg), out)
        if param is not None:
            params.append(param)
    return params


def _parameter(
    p: ast.arg, default: ast.expr | None, description: str | None, out: Problems
) -> PythonParameter | None:
    schema: dict[str, Any] | None = None
    optional = False
    if p.annotation is None:
        out.error(
            p.lineno,
            f"parameter {p.arg!r} has no type annotation",
            f"annotate it, e.g. '{p.arg}: str'; allowed: {ALLOWED_TYPES}",
        )
    else:
        try:
            schema, optional = annotation_schema(p.annotation)
        except Unsupported as exc:
            out.error(p.annotation.lineno, f"parameter {p.arg!r}: {exc.message}", exc.fix)
        if schema == ANY_SCHEMA:
            out.warning(
                p.annotation.lineno,
                f"parameter {p.arg!r} is Any: the LLM may send any JSON value",
                "give it a precise type (str, int, list[str], ...)",
            )
    has_default, value = False, None
    if default is not None:
        ok, value = literal(default)
        if not ok:
            out.error(
                default.lineno,
                f"the default of {p.arg!r} is not a JSON literal: {unparse(default)}",
                "use a literal string, number, True/False, None, or a list/dict of them",
            )
        elif schema is not None and not Draft202012Validator(schema).is_valid(value):
            ann = unparse(p.annotation) if p.annotation else ""
            out.error(
                default.lineno,
                f"the default of {p.arg!r} ({value!r}) does not match its type {ann}",
                f"annotate it '{p.arg}: {ann} | None = None'"
                if value is None
                else "make the default match the type",
            )
        else:
            has_default = True
    if schema is None or p.annotation is None:
        return None
    full = dict(schema)
    if description:
        full["description"] = description
    if has_default or optional:
        full["default"] = value
    return PythonParameter(
        name=p.arg,
        annotation=unparse(p.annotation),
        schema=full,
        required=not (has_default or optional),
        line=p.lineno,
        description=description,
        has_default=has_default,
        default=value,
    )


def _check_described(
    fn: _Def, params: list[PythonParameter], described: dict[str, str], out: Problems
) -> None:
    """The docstring's Args: against the parameters, both ways."""
    names = {p.name for p in params} | {"ctx"}
    for documented in described:
        if documented.lstrip("*") not in names:
            hint = did_you_mean(documented, names)
            out.warning(
                fn.body[0].lineno,
                f"the docstring describes {documented!r}, which is not a parameter",
                f"did you mean {hint!r}?" if hint else "remove it from Args:",
            )
    for p in params:
        if p.description is None:
            out.warning(
                p.line,
                f"parameter {p.name!r} is not described in the docstring's Args: section",
                f"add '{p.name}: <what the LLM should send>' under Args:",
            )


def _body_nodes(fn: _Def) -> Iterator[ast.AST]:
    """The entrypoint's own nodes, not those of nested functions, lambdas or classes."""
    stack: list[ast.AST] = list(fn.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _check_returns(fn: _Def, out: Problems) -> None:
    if fn.returns is None:
        out.error(fn.lineno, f"{fn.name!r} has no return annotation", "add '-> dict'")
    elif not is_dict_annotation(fn.returns):
        out.error(
            fn.returns.lineno,
            f"{fn.name!r} must return dict, not {unparse(fn.returns)}",
            "annotate '-> dict' and return a dict with a 'status' key",
        )
    returns: list[ast.Return] = []
    for node in _body_nodes(fn):
        if isinstance(node, ast.Yield | ast.YieldFrom):
            out.error(
                node.lineno,
                "'yield' makes the entrypoint a generator; it must return one dict",
                "return the result instead of yielding it",
            )
            return
        if isinstance(node, ast.Return):
            returns.append(node)
    if not returns:
        out.warning(
            fn.lineno, f"{fn.name!r} never returns a result", 'return {"status": "success", ...}'
        )
    for ret in sorted(returns, key=lambda r: r.lineno):
        value = ret.value
        if value is None or (isinstance(value, ast.Constant) and value.value is None):
            out.warning(ret.lineno, "returns None instead of a dict", 'return {"status": ..., ...}')
        elif isinstance(value, ast.Dict) and None not in value.keys:
            keys = {k.value for k in value.keys if isinstance(k, ast.Constant)}
            if "status" not in keys:
                out.warning(
                    ret.lineno,
                    "returns a dict without a 'status' key",
                    'add "status": "success" (or "error" with a "message")',
                )
