"""Templates: ``%(name)s``-style parameter specifiers and ``{variable}`` context variables.

Values are substituted into the *parsed* template structure, never by ``%`` on JSON text, so
quotes, newlines, backslashes, ``%`` and any script survive byte for byte.

Rules (each is tested):

- A string that is exactly one specifier is replaced by a typed JSON value: ``"%(n)i"`` gives an
  integer, ``"%(x)f"`` a number, ``"%(s)s"`` the value itself (a string stays a string, a boolean a
  boolean, a list or object stays JSON; a number becomes its text, as ``%s`` does in Python).
  A specifier with flags, width or precision (``"%(p).2f"``) always gives formatted text.
- Inside a longer string each specifier formats like Python's ``%``; booleans render as
  ``true``/``false`` and lists/objects as compact JSON. A float for ``%i`` is an error, never a
  silent truncation.
- A value that refers to a parameter the LLM did not give is omitted (its key is dropped from the
  object, its element from the list), never sent as ``None`` or an empty string.
- ``{variable}`` names a context variable (``{agent_id}``, ``{customer_name}``...). Only
  ``{identifier}`` is special; other braces and any ``%`` that is not a specifier are left alone.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

SPECIFIER_RE: Final = re.compile(
    r"%\((?P<name>[^()%]*)\)(?P<flags>[-#0 +]*)(?P<width>\d+)?(?:\.(?P<prec>\d+))?(?P<conv>[a-zA-Z]?)"
)
VARIABLE_RE: Final = re.compile(r"\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}")
_TOKEN_RE: Final = re.compile(
    f"{SPECIFIER_RE.pattern}|{VARIABLE_RE.pattern.replace('name', 'var')}"
)

#: Conversions we accept, and the JSON type a whole-value specifier yields.
CONVERSIONS: Final = {
    "s": "string",
    "i": "integer",
    "d": "integer",
    "f": "number",
    "F": "number",
    "e": "number",
    "E": "number",
    "g": "number",
    "G": "number",
}


class TemplateError(ValueError):
    """A value could not be rendered into the template (wrong type, unset variable)."""


class _Omit:
    __slots__ = ()

    def __repr__(self) -> str:
        return "OMIT"


#: Marks a value that refers to a parameter the LLM did not give: the key is dropped.
OMIT: Final = _Omit()


@dataclass(frozen=True, slots=True)
class Specifier:
    """One ``%(name)conv`` occurrence."""

    name: str
    conv: str
    text: str
    formatted: bool  # has flags, width or precision

    @property
    def json_type(self) -> str | None:
        return CONVERSIONS.get(self.conv)


@dataclass(frozen=True, slots=True)
class Variable:
    """One ``{name}`` occurrence."""

    name: str
    text: str


Part: TypeAlias = str | Specifier | Variable


def parse_string(text: str) -> list[Part]:
    """Split a template string into literal text, specifiers and variables."""
    if "%" not in text and "{" not in text:
        return [text]
    parts: list[Part] = []
    pos = 0
    for m in _TOKEN_RE.finditer(text):
        if m.start() > pos:
            parts.append(text[pos : m.start()])
        if m.group("var") is not None:
            parts.append(Variable(m.group("var"), m.group(0)))
        else:
            formatted = bool(m.group("flags") or m.group("width") or m.group("prec"))
            parts.append(Specifier(m.group("name"), m.group("conv"), m.group(0), formatted))
        pos = m.end()
    if pos < len(text):
        parts.append(text[pos:])
    return parts


def iter_placeholders(
    template: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], Specifier | Variable]]:
    """Every placeholder in a template (strings, lists and object *values*) with its path."""
    if isinstance(template, str):
        for part in parse_string(template):
            if not isinstance(part, str):
                yield path, part
    elif isinstance(template, Mapping):
        for key, value in template.items():
            yield from iter_placeholders(value, (*path, key))
    elif isinstance(template, list):
        for i, value in enumerate(template):
            yield from iter_placeholders(value, (*path, i))


# ---------------------------------------------------------------------------- rendering


Lookup: TypeAlias = Mapping[str, Any]


def _int_value(spec: Specifier, value: Any) -> int:
    if isinstance(value, bool):
        raise TemplateError(f"{spec.text} expects an integer, got a boolean ({json.dumps(value)})")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise TemplateError(
            f"{spec.text} expects an integer, got {value!r}; it is not rounded or truncated. "
            f"Declare the parameter as 'number' and use %({spec.name})f"
        )
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value.strip())
    raise TemplateError(
        f"{spec.text} expects an integer, got {json.dumps(value, ensure_ascii=False)}"
    )


def _float_value(spec: Specifier, value: Any) -> float:
    if isinstance(value, bool):
        raise TemplateError(f"{spec.text} expects a number, got a boolean ({json.dumps(value)})")
    number: float | None = None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    if number is not None:
        if not math.isfinite(number):
            raise TemplateError(f"{spec.text} expects a finite number, got {value!r}")
        return number
    raise TemplateError(
        f"{spec.text} expects a number, got {json.dumps(value, ensure_ascii=False)}"
    )


def _text(value: Any) -> str:
    """How a value reads inside a longer string."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def format_specifier(spec: Specifier, value: Any) -> str:
    """Format one value as text, like Python's ``%`` would, but type-checked."""
    kind = spec.json_type
    if kind == "integer":
        value = _int_value(spec, value)
    elif kind == "number":
        value = _float_value(spec, value)
    elif kind == "string":
        value = _text(value)
    else:
        raise TemplateError(f"{spec.text}: unsupported conversion {spec.conv!r}; use s, i or f")
    # The specifier is a small, validated piece of text; only it meets the % operator.
    return (spec.text.replace(f"%({spec.name})", "%(v)", 1)) % {"v": value}


def whole_value(spec: Specifier, value: Any) -> Any:
    """The typed JSON value a string consisting of exactly one specifier becomes."""
    if spec.formatted:
        return format_specifier(spec, value)
    kind = spec.json_type
    if kind == "integer":
        return _int_value(spec, value)
    if kind == "number":
        return _float_value(spec, value)
    if kind == "string":
        if isinstance(value, str | bool | dict | list):
            return value
        return _text(value)
    raise TemplateError(f"{spec.text}: unsupported conversion {spec.conv!r}; use s, i or f")


class Template:
    """A template compiled once and rendered per invocation."""

    __slots__ = ("_node", "source")

    def __init__(self, source: Any) -> None:
        self.source = source
        self._node = _compile(source)

    def render(self, arguments: Lookup, variables: Lookup) -> Any:
        """Render with the call's arguments (for ``%(...)``) and context variables (``{...}``).

        Returns ``OMIT`` when the whole template refers to a missing optional parameter.
        """
        return self._node(arguments, variables)


_Node: TypeAlias = Any  # Callable[[Lookup, Lookup], Any]


def _compile(source: Any) -> _Node:
    if isinstance(source, str):
        return _compile_string(source)
    if isinstance(source, Mapping):
        items = [(k, _compile(v)) for k, v in source.items()]

        def render_object(a: Lookup, v: Lookup) -> Any:
            out = {}
            for key, node in items:
                value = node(a, v)
                if value is not OMIT:
                    out[key] = value
            return out

        return render_object
    if isinstance(source, list):
        nodes = [_compile(v) for v in source]

        def render_list(a: Lookup, v: Lookup) -> Any:
            return [x for x in (node(a, v) for node in nodes) if x is not OMIT]

        return render_list
    return lambda a, v: source


def _lookup_variable(var: Variable, variables: Lookup) -> Any:
    try:
        return variables[var.name]
    except KeyError:
        raise TemplateError(
            f"context variable {var.text} is not set for this call; pass it as a dynamic "
            f"variable (for example --var {var.name}=...)"
        ) from None


def _compile_string(text: str) -> _Node:
    parts = parse_string(text)
    if len(parts) == 1:
        part = parts[0]
        if isinstance(part, str):
            return lambda a, v: part
        if isinstance(part, Variable):
            return lambda a, v: _lookup_variable(part, v)
        spec = part

        def render_whole(a: Lookup, v: Lookup) -> Any:
            if spec.name in a:
                return whole_value(spec, a[spec.name])
            return OMIT

        return render_whole

    def render_mixed(a: Lookup, v: Lookup) -> Any:
        out: list[str] = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, Variable):
                out.append(_text(_lookup_variable(part, v)))
            elif part.name in a:
                out.append(format_specifier(part, a[part.name]))
            else:
                return OMIT
        return "".join(out)

    return render_mixed


def render_text(text: str, variables: Lookup) -> str:
    """Fill ``{variable}`` placeholders in speech or prompt text; unknown ones stay as written."""
    if "{" not in text:
        return text
    return VARIABLE_RE.sub(
        lambda m: _text(variables[m.group("name")]) if m.group("name") in variables else m.group(0),
        text,
    )
