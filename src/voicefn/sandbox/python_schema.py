"""Python annotations as JSON Schema, read from the :mod:`ast` (customer code is never run).

The JSON types: ``str``, ``int``, ``float``, ``bool``, ``None``, ``dict``, ``list``, ``list[X]``,
``dict[str, X]``, ``Optional[X]`` / ``X | None``, ``Literal[...]`` (an ``enum``),
``Annotated[X, ...]`` (as X), unions of scalars, ``typing.``-prefixed forms, and ``Any`` (an
untyped JSON value). Anything else raises :class:`Unsupported` with a hint. Also: JSON literal
values (defaults, ``__voicefn__``) through :func:`ast.literal_eval`.
"""

from __future__ import annotations

import ast
import math
import warnings
from typing import Any

ALLOWED_TYPES = (
    "str, int, float, bool, None, dict, list, list[str], dict[str, Any], Any, "
    "Optional[X] / X | None, Literal['a', 'b']"
)
#: An untyped JSON value (``Any``).
ANY_SCHEMA: dict[str, Any] = {"type": ["string", "number", "boolean", "object", "array", "null"]}

_TYPING_PREFIXES = frozenset({"typing", "typing_extensions", "t", "builtins", "types"})
_SCALARS = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
_MAX_TYPE_DEPTH = 16
_HINTS = {
    "bytes": "send text (e.g. base64) as str",
    "bytearray": "send text (e.g. base64) as str",
    "Path": "take the path as a str; there is no file system anyway",
    "PurePath": "take the path as a str; there is no file system anyway",
    "tuple": "use list[...]",
    "Tuple": "use list[...]",
    "set": "use list[...]",
    "Set": "use list[...]",
    "frozenset": "use list[...]",
    "Sequence": "use list[...]",
    "Iterable": "use list[...]",
    "Mapping": "use dict[str, ...]",
    "TypedDict": "use dict[str, ...]",
    "Callable": "functions cannot be sent as JSON",
    "callable": "functions cannot be sent as JSON",
    "Awaitable": "functions cannot be sent as JSON",
    "datetime": "take an ISO 8601 str and parse it in the function",
    "date": "take an ISO 8601 str and parse it in the function",
    "Decimal": "use float or str",
    "complex": "use two floats",
    "object": "use Any",
    "RunContext": "only the first parameter, ctx, is a RunContext",
}


class Unsupported(Exception):
    """An annotation that is not a JSON type."""

    def __init__(self, message: str, fix: str = f"use one of: {ALLOWED_TYPES}") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix


def annotation_schema(node: ast.expr) -> tuple[dict[str, Any], bool]:
    """The schema of an annotation and whether it is Optional (a union with None)."""
    node = _resolve(node, 0)
    members = _union_members(node)
    optional = members is not None and any(_is_none(m) for m in members)
    return _schema(node, 0), optional


def is_dict_annotation(node: ast.expr) -> bool:
    """``dict``, ``Dict`` or ``dict[str, ...]``."""
    try:
        node = _resolve(node, 0)
    except Unsupported:
        return False
    if isinstance(node, ast.Subscript):
        args = _subscript_args(node)
        return (
            _type_name(node.value) in ("dict", "Dict")
            and len(args) == 2
            and _type_name(args[0]) == "str"
        )
    return _type_name(node) in ("dict", "Dict")


def is_run_context(node: ast.expr | None) -> bool:
    """``RunContext``, however qualified, and ``RunContext[...]``."""
    if node is None:
        return False
    try:
        node = _resolve(node, 0)
    except Unsupported:
        return False
    if isinstance(node, ast.Subscript):  # RunContext[UserData]
        node = node.value
    name = _dotted(node)
    return name is not None and name.rsplit(".", 1)[-1] == "RunContext"


def literal(node: ast.expr | None) -> tuple[bool, Any]:
    """``(True, value)`` for a JSON-compatible literal (tuples become lists), else ``(False, None)``."""
    if node is None:
        return False, None
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None
    return _jsonable(value)


def unparse(node: ast.AST) -> str:
    """The source of a node, or ``<expression>`` when it is too deep to print."""
    try:
        return ast.unparse(node)
    except (RecursionError, ValueError):
        return "<expression>"


def _resolve(node: ast.expr, depth: int) -> ast.expr:
    """A string annotation parsed; ``Annotated[X, ...]`` as X."""
    while True:
        if depth > _MAX_TYPE_DEPTH:
            raise Unsupported("the type is nested too deeply", "simplify the type")
        depth += 1
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            parsed = _parse_annotation(node.value)
            if parsed is None:
                raise Unsupported(f"{node.value!r} is not a type")
            node = parsed
        elif isinstance(node, ast.Subscript) and _type_name(node.value) == "Annotated":
            node = _subscript_args(node)[0]
        else:
            return node


def _any_schema() -> dict[str, Any]:
    return {"type": list(ANY_SCHEMA["type"])}


def _schema(node: ast.expr, depth: int) -> dict[str, Any]:
    node = _resolve(node, depth)  # raises when depth is over the limit
    members = _union_members(node)
    if members is not None:
        return _union(members, depth + 1)
    if _is_none(node):
        return {"type": "null"}
    if isinstance(node, ast.Subscript):
        base = _type_name(node.value)
        args = _subscript_args(node)
        if base in ("list", "List") and len(args) == 1:
            items = _schema(args[0], depth + 1)
            return {"type": "array"} if items == ANY_SCHEMA else {"type": "array", "items": items}
        if base in ("dict", "Dict") and len(args) == 2:
            if _schema(args[0], depth + 1) != {"type": "string"}:
                raise Unsupported(
                    f"{unparse(node)}: JSON object keys are strings", "use dict[str, ...]"
                )
            values = _schema(args[1], depth + 1)
            if values == ANY_SCHEMA:
                return {"type": "object"}
            return {"type": "object", "additionalProperties": values}
        if base == "Literal":
            return _literal_schema(node, args)
        if base in ("list", "List", "dict", "Dict"):
            raise Unsupported(f"{unparse(node)}: list takes one type, dict two")
        raise _forbidden(node)
    name = _type_name(node)
    if name in _SCALARS:
        return {"type": _SCALARS[name]}
    if name in ("list", "List"):
        return {"type": "array"}
    if name in ("dict", "Dict"):
        return {"type": "object"}
    if name == "Any":
        return _any_schema()
    if name in ("Optional", "Union", "Literal", "Annotated"):
        raise Unsupported(f"{name} needs type arguments", f"write e.g. {name}[...]")
    raise _forbidden(node)


def _union(members: list[ast.expr], depth: int) -> dict[str, Any]:
    with_none = any(_is_none(m) for m in members)
    schemas = [_schema(m, depth) for m in members if not _is_none(m)]
    if not schemas:
        return {"type": "null"}
    if ANY_SCHEMA in schemas:
        return _any_schema()
    if len(schemas) == 1:
        merged = dict(schemas[0])
    elif all(set(s) == {"type"} for s in schemas) or all(
        set(s) == {"type", "enum"} for s in schemas
    ):
        merged = {"type": _merge(*(_types(s) for s in schemas))}
        if "enum" in schemas[0]:
            merged["enum"] = _merge(*(s["enum"] for s in schemas))
    else:
        raise Unsupported(
            "unions of lists, dicts or mixed Literals are not supported",
            "use one type, a union of scalars (str | int), or Any",
        )
    if with_none:
        merged["type"] = _merge(_types(merged), ["null"])
        if "enum" in merged:
            merged["enum"] = _merge(merged["enum"], [None])
    if isinstance(merged["type"], list) and len(merged["type"]) == 1:
        merged["type"] = merged["type"][0]
    return merged


def _literal_schema(node: ast.Subscript, args: list[ast.expr]) -> dict[str, Any]:
    values: list[Any] = []
    for arg in args:
        ok, value = literal(arg)
        if not ok or isinstance(value, list | dict):
            raise Unsupported(
                f"{unparse(node)}: Literal values must be strings, numbers, booleans or None",
                "write e.g. Literal['small', 'large']",
            )
        values.append(value)
    types = _merge([_json_type(v) for v in values])
    return {"type": types[0] if len(types) == 1 else types, "enum": _merge(values)}


def _forbidden(node: ast.expr) -> Unsupported:
    base = _type_name(node.value if isinstance(node, ast.Subscript) else node) or ""
    short = base.rsplit(".", 1)[-1]
    hint = _HINTS.get(short)
    if hint is None and short[:1].isupper():
        hint = "custom classes cannot be sent as JSON; take their fields as parameters or a dict"
    what = f"type {unparse(node)!r} cannot be sent by the LLM as JSON"
    return Unsupported(what + (f" ({hint})" if hint else ""))


def _merge(*lists: list[Any]) -> list[Any]:
    """The items in order, without repeats (``1``, ``1.0`` and ``True`` are kept apart)."""
    out: list[Any] = []
    for items in lists:
        for item in items:
            if not any(item == o and type(item) is type(o) for o in out):
                out.append(item)
    return out


def _types(schema: dict[str, Any]) -> list[Any]:
    t = schema["type"]
    return list(t) if isinstance(t, list) else [t]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return "number" if isinstance(value, float) else "string"


def _union_members(node: ast.expr) -> list[ast.expr] | None:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return [
            *(_union_members(node.left) or [node.left]),
            *(_union_members(node.right) or [node.right]),
        ]
    if isinstance(node, ast.Subscript):
        base = _type_name(node.value)
        if base == "Optional":
            args = _subscript_args(node)
            if len(args) != 1:
                raise Unsupported(f"{unparse(node)}: Optional takes one type", "write Optional[X]")
            return [args[0], ast.Constant(None)]
        if base == "Union":
            return _subscript_args(node)
    return None


def _is_none(node: ast.expr) -> bool:
    return (isinstance(node, ast.Constant) and node.value is None) or _type_name(node) == "NoneType"


def _subscript_args(node: ast.Subscript) -> list[ast.expr]:
    return list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]


def _type_name(node: ast.expr) -> str | None:
    """``Optional`` for ``Optional``, ``typing.Optional`` and ``t.Optional``; ``pathlib.Path``
    stays dotted."""
    name = _dotted(node)
    if name is None:
        return None
    prefix, _, last = name.rpartition(".")
    return last if prefix in _TYPING_PREFIXES or not prefix else name


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _parse_annotation(text: str) -> ast.expr | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.parse(text.strip(), mode="eval").body
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None


def _jsonable(value: Any) -> tuple[bool, Any]:
    if value is None or isinstance(value, bool | int | str):
        return True, value
    if isinstance(value, float):
        return math.isfinite(value), value
    if isinstance(value, list | tuple):
        items = [_jsonable(v) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if isinstance(value, dict):
        pairs = {k: _jsonable(v) for k, v in value.items()}
        ok = all(isinstance(k, str) for k in pairs) and all(ok for ok, _ in pairs.values())
        return ok, {k: v for k, (_, v) in pairs.items()}
    return False, None
