"""What JavaScript customer code declares besides its code, read statically (never run):

* ``const __voicefn__ = {...}`` (or ``export const``) at the top level: the same settings as
  Python's ``__voicefn__`` (``phase``, ``filler``, ``name``, ``entrypoint``, ``timeout_ms``,
  ``memory_mb``), as a literal object: strings, numbers, booleans, null, arrays and objects;
* the JSDoc block (``/** ... */``) right above the entrypoint: its text is the function's
  description, and each ``@param {type} data.x - what it is`` a parameter.

Both work on the tokens of :mod:`.js_contract`'s lexer and report into its :class:`Problems`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..validation import did_you_mean
from .problems import Problems
from .python_contract import SETTINGS as JS_SETTINGS
from .python_contract import _check_setting as python_setting

if TYPE_CHECKING:
    from .js_contract import _Token

JS_PHASES: tuple[str, ...] = ("pre_call", "in_call", "post_call")
#: keys of ``data`` the engine fills (never parameters)
DATA_RESERVED = frozenset({"call", "variables"})

_IDENT = re.compile(r"[A-Za-z_$][\w$]*")
_EXAMPLE = 'const __voicefn__ = { phase: "post_call", timeout_ms: 5000 };'


class _NotLiteral(Exception):
    def __init__(self, line: int, found: str) -> None:
        self.line, self.found = line, found


@dataclass
class JsSettings:
    """``__voicefn__``'s valid settings and the line of each."""

    values: dict[str, Any] = field(default_factory=dict)
    line: int | None = None


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
_ESCAPE_RE = re.compile(r"\\(u\{[0-9a-fA-F]+\}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|\n|.)", re.S)


def _unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        e = m[1]
        if e[0] in "ux" and len(e) > 1:
            return chr(int(e.strip("u{}x") if e[0] == "u" else e[1:], 16))
        return "" if e == "\n" else _ESCAPES.get(e, e)

    return _ESCAPE_RE.sub(one, text)


class _Literal:
    """A JSON-like JavaScript literal from the tokens at ``i`` (``_NotLiteral`` otherwise)."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.key_lines: dict[str, int] = {}

    def value(self, i: int) -> tuple[Any, int]:
        toks = self.tokens
        if i >= len(toks):
            raise _NotLiteral(toks[-1].line, "the end of the code")
        t = toks[i]
        if t.kind == "string":
            return _unescape(t.text), i + 1
        if t.kind == "template":
            if i + 1 < len(toks) and toks[i + 1].depth > t.depth:
                raise _NotLiteral(t.line, "a template with ${...}")
            return _unescape(t.text), i + 1
        if t.kind == "number" or (t.text == "-" and i + 1 < len(toks)):
            sign = 1
            if t.text == "-":
                sign, i, t = -1, i + 1, toks[i + 1]
            if t.kind != "number":
                raise _NotLiteral(t.line, t.text)
            text = t.text.replace("_", "")
            try:
                number: int | float = int(text, 0)
            except ValueError:
                try:
                    number = float(text)
                except ValueError:
                    raise _NotLiteral(t.line, t.text) from None
                if number.is_integer() and "." not in text:
                    number = int(number)  # 1e3
            return sign * number, i + 1
        if t.kind == "word" and t.text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[t.text], i + 1
        if t.text == "[":
            items: list[Any] = []
            i += 1
            while toks[i].text != "]" or toks[i].depth != t.depth:
                item, i = self.value(i)
                items.append(item)
                i = self._comma(i, "]", t.depth)
            return items, i + 1
        if t.text == "{":
            return self._object(i)
        raise _NotLiteral(t.line, t.text)

    def _comma(self, i: int, closer: str, depth: int) -> int:
        t = self.tokens[i]
        if t.text == ",":
            return i + 1
        if t.text == closer and t.depth == depth:
            return i
        raise _NotLiteral(t.line, t.text)

    def _object(self, i: int) -> tuple[dict[str, Any], int]:
        toks, depth, out = self.tokens, self.tokens[i].depth, {}
        i += 1
        while not (toks[i].text == "}" and toks[i].depth == depth):
            key_tok = toks[i]
            if key_tok.kind not in ("word", "string") or toks[i + 1].text != ":":
                raise _NotLiteral(key_tok.line, key_tok.text)
            key = _unescape(key_tok.text) if key_tok.kind == "string" else key_tok.text
            if key_tok.depth == self.tokens[0].depth + 1:
                self.key_lines.setdefault(key, key_tok.line)
            out[key], i = self.value(i + 2)
            i = self._comma(i, "}", depth)
        return out, i + 1


def read_settings(tokens: list[_Token], out: Problems) -> JsSettings:
    """The top-level ``const __voicefn__ = {...}`` (each problem reported with its line)."""
    found = JsSettings()
    for k, tok in enumerate(tokens):
        if tok.kind != "word" or tok.text != "__voicefn__" or tok.depth != 0:
            continue
        before = tokens[k - 1].text if k else ""
        if before not in ("const", "let", "var"):
            if before != ".":
                out.error(
                    tok.line,
                    "__voicefn__ must be declared once, as a literal object",
                    f"write {_EXAMPLE}",
                )
            continue
        if found.line is not None:
            out.error(
                tok.line, f"__voicefn__ is set again (first at line {found.line})", "keep one"
            )
            continue
        found.line = tok.line
        if k + 2 >= len(tokens) or tokens[k + 1].text != "=" or tokens[k + 2].text != "{":
            out.error(tok.line, "__voicefn__ must be one literal object", f"write {_EXAMPLE}")
            continue
        reader = _Literal(tokens[k + 2 :])
        try:
            data, end = reader._object(0)
        except (_NotLiteral, IndexError) as exc:
            line, what = (exc.line, exc.found) if isinstance(exc, _NotLiteral) else (tok.line, "")
            out.error(
                line,
                "__voicefn__ must be a literal object"
                + (f": {what!r} is not a literal value" if what else ""),
                "use only strings, numbers, true/false/null, arrays and objects "
                f"(no variables, calls or ${{...}}), e.g. {_EXAMPLE}",
            )
            continue
        rest = tokens[k + 2 + end :]
        if rest and rest[0].text not in (";",) and rest[0].line == tokens[k + 2 + end - 1].line:
            out.error(rest[0].line, "__voicefn__ must be one literal object", f"write {_EXAMPLE}")
            continue
        for key, value in data.items():
            if _check_setting(key, value, reader.key_lines.get(key, tok.line), out):
                found.values[key] = value
    return found


def _check_setting(key: str, value: Any, line: int, out: Problems) -> bool:
    """JavaScript's phases and fixes; the other keys are checked as Python's are."""
    if key == "phase" and value not in JS_PHASES:
        out.error(
            line, f"phase {value!r} is not a phase", "use 'post_call', 'in_call' or 'pre_call'"
        )
        return False
    if key == "phase" or (
        key == "entrypoint" and isinstance(value, str) and _IDENT.fullmatch(value)
    ):
        return True
    if key not in JS_SETTINGS:
        hint = did_you_mean(key, JS_SETTINGS)
        fix = f"did you mean {hint!r}?" if hint else f"use only {', '.join(JS_SETTINGS)}"
        if key == "description":
            fix = "the description is the /** JSDoc */ block right above the function"
        elif key == "parameters":
            fix = "parameters come from the JSDoc's '@param {string} data.name - what it is' lines"
        out.error(line, f"unknown __voicefn__ key {key!r}", fix)
        return False
    return python_setting(key, value, line, out)


# ------------------------------------------------------------------------------- JSDoc


@dataclass
class JsDoc:
    """A JSDoc block: its description and the ``data.x`` parameters it documents."""

    description: str = ""
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    required: list[str] = field(default_factory=list)


_TYPES = {
    "string": "string",
    "number": "number",
    "integer": "integer",
    "int": "integer",
    "boolean": "boolean",
    "bool": "boolean",
    "object": "object",
    "array": "array",
    "null": "null",
}
_PARAM = re.compile(
    r"^@(?:param|arg|argument|property|prop)\s+(?:\{(?P<type>[^}]*)\}\s*)?"
    r"(?P<name>\[[^\]]*\]|[\w$.]+)\s*(?:-\s*)?(?P<text>.*)$"
)


def _type_schema(text: str) -> dict[str, Any] | None:
    """JSON Schema for a JSDoc type (None: not one the LLM can send)."""
    text = text.strip().lstrip("?!=")
    if text in ("", "*", "any"):
        return {}
    parts = [p.strip().strip("()") for p in text.split("|")]
    types: list[str] = []
    items: dict[str, Any] | None = None
    for part in parts:
        lower = part.lower()
        inner = None
        if lower.endswith("[]"):
            inner = part[:-2]
        elif m := re.fullmatch(r"array\.?<(.+)>", lower):
            inner = m[1]
        if inner is not None:
            items = _type_schema(inner)
            types.append("array")
        elif lower in _TYPES:
            types.append(_TYPES[lower])
        elif re.fullmatch(r"object\.?<.+>", lower):
            types.append("object")
        else:
            return None
    schema: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
    if items:
        schema["items"] = items
    return schema


def jsdoc_above(code: str, line: int) -> tuple[str, int] | None:
    """The ``/** ... */`` block that ends right above ``line`` (1-based) and its first line."""
    lines = code.splitlines()
    k = line - 2
    # the declaration itself may start with `export` on the line before, or sit after `*/`
    same = lines[line - 1] if 0 < line <= len(lines) else ""
    head = same.split("async", 1)[0]
    if "*/" in head:
        k = line - 1
        text_end = head.rindex("*/") + 2
        upto = [*lines[: line - 1], head[:text_end]]
    else:
        while k >= 0 and not lines[k].strip():
            k -= 1
        if k < 0 or not lines[k].rstrip().endswith("*/"):
            return None
        upto = lines[: k + 1]
    text = "\n".join(upto)
    start = text.rfind("/**")
    if start < 0 or "*/" in text[start + 3 : -2]:
        return None
    return text[start + 3 : -2], text.count("\n", 0, start) + 1


def parse_jsdoc(block: str, first_line: int, param: str, out: Problems) -> JsDoc:
    """The description (text before the first tag, as one paragraph) and the ``@param`` lines
    of ``param.x`` (``[param.x]`` or ``[param.x=default]`` for optional ones)."""
    doc = JsDoc()
    summary: list[str] = []
    tags: list[tuple[int, str]] = []
    for n, raw in enumerate(block.splitlines()):
        text = re.sub(r"^\s*\*?\s?", "", raw).rstrip()
        if text.startswith("@"):
            tags.append((first_line + n, text))
        elif tags:
            line_no, previous = tags[-1]
            tags[-1] = (line_no, f"{previous} {text.strip()}".strip())
        elif text.strip():
            summary.append(text.strip())
        elif summary:
            summary.append("")
    doc.description = " ".join(summary).split("  ")[0].strip()
    for line_no, tag in tags:
        if tag.startswith("@description"):
            doc.description = doc.description or tag[len("@description") :].strip()
            continue
        m = _PARAM.match(tag)
        if not m:
            continue
        name, optional, default = m["name"], False, None
        if name.startswith("["):
            optional = True
            name, _, default = name.strip("[]").partition("=")
        prefix, _, key = name.partition(".")
        if prefix != param or not key or "." in key or key in DATA_RESERVED:
            continue  # the data object itself, nested fields, or what the engine fills
        schema = _type_schema(m["type"] or "")
        if schema is None:
            out.warning(
                line_no,
                f"@param {name}: {{{m['type']}}} is not a JSON type the LLM can send",
                "use string, number, integer, boolean, object, array or string[]",
            )
            schema = {}
        if m["text"].strip():
            schema["description"] = m["text"].strip()
        if default:
            import json

            try:
                schema["default"] = json.loads(default)
            except ValueError:
                schema["default"] = default
        doc.properties[key] = schema
        if not optional:
            doc.required.append(key)
    return doc
