"""A light static check of post-call JavaScript (``async function name(data)``, with axios,
moment and lodash pre-imported). There is no JavaScript parser here: a small tokenizer finds the
entrypoint, counts its parameters, balances brackets (aware of strings, comments, template and
regex literals) and warns about modules that are not available. Nothing here runs the code."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ..validation import did_you_mean
from .problems import CodeProblem, Problems

#: What post-call JavaScript can use; they are pre-imported (``axios``, ``moment``, ``_``).
JS_MODULES: tuple[str, ...] = ("axios", "moment", "lodash")

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


def check_javascript(
    code: str, *, entrypoint: str | None = None
) -> tuple[str | None, list[CodeProblem]]:
    """A light structural check of a post-call function (``async function name(data)``, with
    axios, moment and lodash pre-imported): the entrypoint's name (None if any error) and the
    problems.

    There is no JavaScript parser here, so this only finds the entrypoint, counts its parameters,
    balances brackets (aware of strings, comments, template and regex literals) and warns about
    modules that are not available. Real syntax checking happens when the JavaScript sandbox
    loads the code. Never runs the code.
    """
    out = Problems()
    if out.too_long(code, "keep the function small"):
        return None, out.result()
    tokens = _JsLexer(code, out).run()
    if tokens is None:
        return None, out.result()
    _check_modules(tokens, out)
    name = _js_entry(tokens, entrypoint, out)
    return (None if out.failed else name), out.result()


def _js_entry(tokens: list[_Token], entrypoint: str | None, out: Problems) -> str | None:
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
    return name


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
        name = module.text
        if name.split("/", 1)[0] in JS_MODULES:
            continue
        if "://" in name or name.startswith("//"):
            out.warning(
                tok.line,
                f"{tok.text} of {name!r}: code cannot be loaded from the network",
                "remove it; only axios, moment and lodash are available",
            )
        else:
            out.warning(
                tok.line,
                f"{name!r} is not available: only axios, moment and lodash are",
                "remove it and use the pre-imported axios, moment and _ (lodash)",
            )
