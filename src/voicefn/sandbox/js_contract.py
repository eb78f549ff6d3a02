"""The static check of JavaScript functions (``async function name(data)``, with axios, moment
and lodash as globals, or imported by those names). A small tokenizer finds the entrypoint, counts its parameters, balances
brackets (aware of strings, comments, template and regex literals), reads ``__voicefn__`` and
the JSDoc (:mod:`.js_settings`) and reports imports that cannot work; the sandbox's Deno then
parses the code for syntax errors (:mod:`.javascript._parse`). Nothing here runs the code."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from ..spec import NAME_PATTERN
from ..validation import did_you_mean
from .js_settings import JsDoc, jsdoc_above, parse_jsdoc, read_settings
from .problems import CodeProblem, Problems

#: What post-call JavaScript can use: globals (``axios``, ``moment``, ``_``), or imported by
#: these names (``import axios from "axios"``; lodash also by function: ``import { get } ...``).
JS_MODULES: tuple[str, ...] = ("axios", "moment", "lodash")

#: how to import each of them as a whole (a file inside one cannot be imported)
_WHOLE_MODULE = {
    "axios": 'import axios from "axios" (or use the global axios)',
    "moment": 'import moment from "moment" (or use the global moment)',
    "lodash": 'import _ from "lodash" or import { get } from "lodash" (or use the global _)',
}
_NAME_RE = re.compile(NAME_PATTERN)
_Kind = Literal["word", "string", "template", "regex", "number", "punct"]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _Kind
    text: str  #: a string's contents without quotes
    line: int
    depth: int  #: open brackets around it (an opening bracket is outside itself)


_JS_WORD = re.compile(r"[A-Za-z_$\u0080-\uffff][\w$\u0080-\uffff]*")
_JS_NUMBER = re.compile(r"\.?\d[\w.]*")
#: After these words a ``/`` starts a regular expression, not a division.
_JS_REGEX_AFTER = frozenset(
    {"return", "typeof", "instanceof", "in", "of", "new", "delete", "void", "throw", "case"}
    | {"do", "else", "yield", "await"}
)
_OPEN = {"(": ")", "[": "]", "{": "}", "${": "}"}


class _JsLexer:
    """Tokens with brackets balanced, aware of strings, comments, template literals and regex
    literals; the first bracket problem ends it."""

    def __init__(self, code: str, out: Problems) -> None:
        self.code, self.out = code, out
        self.tokens: list[_Token] = []
        self.stack: list[tuple[str, int]] = []
        self.i, self.line = 0, 1

    def emit(self, kind: _Kind, text: str, line: int | None = None) -> None:
        self.tokens.append(_Token(kind, text, line or self.line, len(self.stack)))

    def run(self) -> list[_Token] | None:
        code, n = self.code, len(self.code)
        if code.startswith("#!"):
            self.i = code.find("\n") if "\n" in code else n
        while self.i < n:
            c = code[self.i]
            if c == "\n":
                self.line += 1
                self.i += 1
            elif c.isspace():
                self.i += 1
            elif code.startswith("//", self.i):
                end = code.find("\n", self.i)
                self.i = n if end < 0 else end
            elif code.startswith("/*", self.i):
                end = code.find("*/", self.i + 2)
                if end < 0:
                    self.out.error(self.line, "unterminated /* comment", "close it with */")
                    return None
                self.line += code.count("\n", self.i, end)
                self.i = end + 2
            elif c in "'\"":
                if not self.string(c):
                    return None
            elif c == "`":
                self.i += 1
                if not self.template():
                    return None
            elif c == "/" and self.regex_allowed() and self.regex():
                pass
            elif c in "([{":
                self.emit("punct", c)
                self.stack.append((c, self.line))
                self.i += 1
            elif c in ")]}":
                if not self.close(c):
                    return None
            elif m := _JS_WORD.match(code, self.i):
                self.emit("word", m[0])
                self.i = m.end()
            elif m := _JS_NUMBER.match(code, self.i):
                self.emit("number", m[0])
                self.i = m.end()
            else:
                self.emit("punct", c)
                self.i += 1
        if self.stack:
            opened, line = self.stack[-1]
            self.out.error(
                line,
                f"'{opened}' opened at line {line} is never closed",
                f"add the matching '{_OPEN[opened]}'",
            )
        return self.tokens

    def close(self, c: str) -> bool:
        if not self.stack:
            self.out.error(
                self.line, f"unexpected '{c}': nothing is open", "remove it or add its opening"
            )
            return False
        opened, line = self.stack[-1]
        if _OPEN[opened] != c:
            self.out.error(
                self.line,
                f"'{c}' does not match the '{opened}' opened at line {line}",
                f"close the '{opened}' with '{_OPEN[opened]}' first",
            )
            return False
        self.stack.pop()
        self.emit("punct", c)
        self.i += 1
        return opened != "${" or self.template()

    def string(self, quote: str) -> bool:
        code, start, j = self.code, self.line, self.i + 1
        while j < len(code) and code[j] not in (quote, "\n"):
            if code[j] == "\\":
                self.line += code[j + 1 : j + 2] == "\n"
                j += 1
            j += 1
        if j >= len(code) or code[j] != quote:
            self.out.error(start, "unterminated string", f"close it with {quote}")
            return False
        self.emit("string", code[self.i + 1 : j], start)
        self.i = j + 1
        return True

    def template(self) -> bool:
        """From inside a template literal to its closing backtick or its next ``${``."""
        code, start, j = self.code, self.line, self.i
        while j < len(code):
            if code[j] == "\\":
                j += 2
                continue
            if code[j] == "`":
                self.line += code.count("\n", self.i, j)
                self.emit("template", code[self.i : j], start)
                self.i = j + 1
                return True
            if code.startswith("${", j):
                self.line += code.count("\n", self.i, j)
                self.emit("template", code[self.i : j], start)
                self.stack.append(("${", self.line))
                self.i = j + 2
                return True
            j += 1
        self.out.error(start, "unterminated template literal", "close it with `")
        return False

    def regex_allowed(self) -> bool:
        if not self.tokens:
            return True
        last = self.tokens[-1]
        if last.kind == "word":
            return last.text in _JS_REGEX_AFTER
        return last.kind == "punct" and last.text not in ")]"

    def regex(self) -> bool:
        code, j, in_class = self.code, self.i + 1, False
        while j < len(code) and code[j] != "\n":
            ch = code[j]
            if ch == "\\":
                j += 2
                continue
            if ch == "/" and not in_class:
                end = j + 1
                while end < len(code) and (code[end].isalnum() or code[end] in "_$"):
                    end += 1
                self.emit("regex", code[self.i : end])
                self.i = end
                return True
            in_class = (in_class or ch == "[") and ch != "]"
            j += 1
        return False  # not a regex after all: a division


@dataclass(frozen=True)
class JsSignature:
    """What a valid JavaScript function declares (see :func:`check_javascript_signature`)."""

    name: str  #: the function's name (``__voicefn__.name`` or the entrypoint's)
    entrypoint: str  #: the ``async function`` the sandbox calls
    line: int
    description: str  #: from the JSDoc block above the entrypoint ("" without one)
    parameters: dict[str, Any] = field(default_factory=dict)  #: JSON Schema (``@param data.x``)
    settings: dict[str, Any] = field(default_factory=dict)  #: from ``__voicefn__``

    @property
    def phase(self) -> str:
        return str(self.settings.get("phase", "post_call"))


def check_javascript(
    code: str, *, entrypoint: str | None = None, engine: bool = True
) -> tuple[str | None, list[CodeProblem]]:
    """Check a JavaScript function (``async function name(data)``, with axios, moment and
    lodash pre-imported): the entrypoint's name (None if any error) and the problems.

    A small tokenizer finds the entrypoint, balances brackets, reads ``__voicefn__`` and the
    JSDoc and checks imports; then (``engine=True``) the Deno binary of the sandbox parses the
    code for syntax errors with line and column (see
    :mod:`voicefn.sandbox.javascript._parse`; a warning says when it could not). Never runs
    the code.
    """
    signature, problems = check_javascript_signature(code, entrypoint=entrypoint, engine=engine)
    return (signature.entrypoint if signature else None), problems


def check_javascript_signature(
    code: str, *, entrypoint: str | None = None, engine: bool = True
) -> tuple[JsSignature | None, list[CodeProblem]]:
    """:func:`check_javascript`, with everything the code declares (None if any error)."""
    out = Problems()
    if out.too_long(code, "keep the function small"):
        return None, out.result()
    tokens = _JsLexer(code, out).run()
    if tokens is None:
        return None, out.result()
    module = _is_module(tokens)
    _check_modules(tokens, out)
    settings = read_settings(tokens, out).values
    chosen = _js_entry(tokens, entrypoint or settings.get("entrypoint"), out)
    if engine and not out.failed:
        _engine_check(code, module, out)
    if chosen is None or out.failed:
        return None, out.result()
    entry, line, param = chosen
    doc = JsDoc()
    found = jsdoc_above(code, line)
    if found is not None:
        doc = parse_jsdoc(found[0], found[1], param or "data", out)
    phase = settings.get("phase", "post_call")
    if not doc.description and phase != "post_call":
        out.warning(
            line,
            f"{entry!r} has no description: the LLM reads it to know when to call the function",
            "add a JSDoc block right above it: /** When to call it. @param {string} data.x - ... */",
        )
    parameters: dict[str, Any] = {"type": "object", "properties": doc.properties}
    if doc.required:
        parameters["required"] = doc.required
    name = settings.get("name", entry)
    if not _NAME_RE.fullmatch(name):
        out.error(
            line, _invalid_name(name), 'rename it, or set __voicefn__ = { name: "my_function" }'
        )
        return None, out.result()
    signature = JsSignature(name, entry, line, doc.description, parameters, settings)
    return signature, out.result()


def javascript_function(
    code: str, *, entrypoint: str | None = None, name: str | None = None, engine: bool = True
) -> tuple[dict[str, Any] | None, list[CodeProblem]]:
    """A canonical voicefn function document for JavaScript code (ready for
    :func:`voicefn.validation.validate_document`), or None and the problems."""
    signature, problems = check_javascript_signature(code, entrypoint=entrypoint, engine=engine)
    if signature is None:
        return None, problems
    settings = signature.settings
    phase = signature.phase
    default = f"{phase.replace('_', '-').capitalize()} function {signature.entrypoint}"
    action = {"type": "javascript", "code": code, "entrypoint": signature.entrypoint}
    action |= {k: settings[k] for k in ("timeout_ms", "memory_mb") if k in settings}
    doc: dict[str, Any] = {
        "name": name or signature.name,
        "description": signature.description or default,
        "phase": phase,
        "parameters": signature.parameters,
        **({"filler": settings["filler"]} if "filler" in settings else {}),
        "action": action,
    }
    return doc, problems


def _invalid_name(name: str) -> str:
    return f"{name!r} is not a valid function name (1-64 letters, digits, '_' or '-')"


def _is_module(tokens: list[_Token]) -> bool:
    """Top-level ``import``/``export`` statements: the worker loads the code as an ES module."""
    for k, tok in enumerate(tokens):
        if tok.kind == "word" and tok.depth == 0 and tok.text in ("import", "export"):
            after = tokens[k + 1].text if k + 1 < len(tokens) else ""
            before = tokens[k - 1].text if k else ""
            if after not in ("(", ".") and before != ".":
                return True
    return False


def _engine_check(code: str, module: bool, out: Problems) -> None:
    """Syntax errors from the sandbox's Deno (lazily imported: only JavaScript pays for it)."""
    from .javascript._parse import Skipped, engine_syntax_problems

    try:
        problems = engine_syntax_problems(code, module)
    except Skipped as exc:
        out.warning(
            None,
            f"the full syntax check was skipped: {exc}",
            "only brackets, strings, the entrypoint and imports were checked; install Deno "
            "(pip install 'deno>=2.0') to check the syntax before the function runs",
        )
        return
    out.items.extend(problems)


def _js_entry(
    tokens: list[_Token], entrypoint: str | None, out: Problems
) -> tuple[str, int, str | None] | None:
    """The entrypoint: its name, line and first parameter's name (None when destructured)."""
    found: list[tuple[str, int, bool]] = []  # name, index of "(", async
    for k, tok in enumerate(tokens[:-2]):
        if tok.kind != "word" or tok.text != "function" or tok.depth != 0:
            continue
        j = k + 1 + (tokens[k + 1].text == "*")
        if (
            j + 1 < len(tokens)
            and tokens[j].kind == "word"
            and tokens[j + 1].kind == "punct"
            and tokens[j + 1].text == "("
        ):
            is_async = k > 0 and tokens[k - 1].kind == "word" and tokens[k - 1].text == "async"
            found.append((tokens[j].text, j + 1, is_async))
    template = "async function name(data) { ... }"
    if entrypoint is not None:
        candidates = [f for f in found if f[0] == entrypoint]
        if not candidates:
            hint = did_you_mean(entrypoint, [f[0] for f in found])
            fix = (
                f"did you mean {hint!r}?"
                if hint
                else f"define {template.replace('name', entrypoint)}"
            )
            out.error(None, f"no top-level function named {entrypoint!r}", fix)
            return None
        chosen = candidates[-1]
    else:
        asyncs = [f for f in found if f[2]]
        if len(asyncs) > 1:
            listing = ", ".join(f"{f[0]} (line {tokens[f[1]].line})" for f in asyncs)
            out.error(
                tokens[asyncs[1][1]].line,
                f"several top-level async functions: {listing}",
                f'name the entrypoint ("entrypoint": "{asyncs[0][0]}" in the function\'s action), '
                "or keep one top-level async function",
            )
            return None
        if not asyncs and len(found) != 1:
            out.error(
                None,
                "no top-level async function found",
                f"write {template} (not an arrow function)",
            )
            return None
        chosen = asyncs[0] if asyncs else found[0]
    name, paren, is_async = chosen
    line = tokens[paren].line
    if not is_async:
        out.error(
            line, f"{name!r} must be an 'async function'", f"write 'async function {name}(data)'"
        )
    count, inside = 0, False
    for tok in tokens[paren + 1 :]:
        if tok.depth == 0:  # the closing ")"
            break
        if tok.depth == 1 and tok.kind == "punct" and tok.text == ",":
            count, inside = count + 1, False
        else:
            inside = True
    count += inside
    if count != 1:
        out.warning(
            line,
            f"{name!r} takes {count} parameters; it is called with one (the call data)",
            f"declare one: async function {name}(data)",
        )
    first = tokens[paren + 1] if paren + 1 < len(tokens) else None
    param = first.text if first is not None and first.kind == "word" and count else None
    return name, line, param


def _check_modules(tokens: list[_Token], out: Problems) -> None:
    for k, tok in enumerate(tokens):
        if tok.kind != "word" or tok.text not in ("require", "import"):
            continue
        if k > 0 and tokens[k - 1].text == ".":
            continue
        rest = tokens[k + 1 : k + 40]
        module: _Token | None = None
        if rest and rest[0].text == "(":
            if len(rest) > 2 and rest[1].kind == "string" and rest[2].text == ")":
                module = rest[1]
            else:
                out.warning(
                    tok.line,
                    f"{tok.text}() of a computed name",
                    "use the pre-imported axios, moment and _ (lodash)",
                )
                continue
        elif tok.text == "import":
            module = next((t for t in rest if t.kind == "string"), None)
            if rest and rest[0].text == ".":  # import.meta
                module = None
        if module is None:
            continue
        message, fix = _module_problem(tok.text, module.text)
        if message:
            out.error(tok.line, message, fix)


def _module_problem(how: str, name: str) -> tuple[str, str]:
    """Why ``import``/``require`` of ``name`` fails in the sandbox, and the fix."""
    globals_fix = (
        "axios, moment and _ (lodash) are globals (or import them by name: "
        'import axios from "axios")'
    )
    if how == "require":
        return (
            f"require({name!r}): require() is not available in the sandbox (no CommonJS)",
            f"{globals_fix}; import an allowed Node built-in as import crypto from 'node:crypto'",
        )
    if name in JS_MODULES:
        return ("", "")  # the import map points them at the same vendored copies as the globals
    root = name.split("/", 1)[0]
    if root in JS_MODULES:
        return (
            f"import of {name!r}: only {root!r} itself can be imported, not a file inside it",
            _WHOLE_MODULE[root],
        )
    if "://" in name or name.startswith("//"):
        return (
            f"import of {name!r}: code cannot be loaded from the network",
            f"remove it; {globals_fix}",
        )
    from .javascript._modules import ALLOWED

    builtin = name.removeprefix("node:")
    if builtin in ALLOWED:
        return ("", "")
    return (
        f"import of {name!r}: the module is not available in the sandbox",
        f"remove it; {globals_fix}; allowed Node built-ins (node:crypto, node:buffer, "
        "node:url, ...) may be imported",
    )
