"""Split a pasted shell command line into commands and words, as bash would (without running it).

Handled: line continuations, ``'...'``, ``"..."`` and ``$'...'`` strings, ``#`` comments, several
commands (one per line, or joined by ``;``, ``&&``, ``||``, ``|``, ``&``), here-documents (turned
into ``<<<`` here-strings, so ``-d @-`` can read them) and shell expansions. A ``$NAME``,
``${NAME}``, ``${NAME:-default}``, ``$(command)`` or backquoted command that bash would expand
(outside single quotes, not escaped) cannot be expanded here: it is replaced by a marker
(:data:`MARK` + index + :data:`MARK`) that names a :class:`ShellVar`, and
:mod:`voicefn.dialects.curl` turns every marker into a ``{context_variable}`` placeholder.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MARK",
    "SEPARATOR",
    "CurlParseError",
    "ShellVar",
    "decode_ansi_c",
    "marked",
    "restore",
    "snake",
    "split_commands",
    "substitute",
]

EXAMPLE: Final = (
    "curl 'https://api.example.com/orders?order_id=ORD-123' -H 'Authorization: Bearer sk_...'"
)

#: Brackets a shell expansion's index inside a word: ``"Bearer \x000\x00"``.
MARK: Final = "\x00"
#: The word that stands for an unquoted line break between two commands.
SEPARATOR: Final = "\x1e"
_MARK_RE: Final = re.compile("\x00(\\d+)\x00")


class CurlParseError(ValueError):
    """The command cannot become a function; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class ShellVar:
    """A shell expansion in the command, which the converter cannot evaluate."""

    text: str  # as written: $TOKEN, ${API_KEY}, $(gcloud auth print-access-token)
    name: str  # the context variable it becomes, before renames: token, api_key, access_token
    command: bool  # $(...) or `...`: the output of a command
    default: str | None = None  # ${NAME:-default}


def marked(text: str) -> list[int]:
    """The indexes of the shell expansions in a word, in order."""
    return [int(m.group(1)) for m in _MARK_RE.finditer(text)]


def restore(text: str, shell_vars: list[ShellVar]) -> str:
    """The word as it was written, for messages."""
    return _MARK_RE.sub(lambda m: shell_vars[int(m.group(1))].text, text)


def substitute(text: str, names: dict[int, str]) -> str:
    """The word with every shell expansion replaced by ``{name}``."""
    return _MARK_RE.sub(lambda m: "{" + names[int(m.group(1))] + "}", text)


# ------------------------------------------------------------------------------- $'...'

_ANSI_RE: Final = re.compile(
    r"\\(x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{1,4}|U[0-9a-fA-F]{1,8}|[0-7]{1,3}|c.|.)", re.S
)
_ANSI_SIMPLE: Final = {
    "n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b",
    "f": "\f", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?",
}  # fmt: skip


def decode_ansi_c(body: str) -> str:
    """The text of a bash ``$'...'`` string; ``\\xHH`` bytes are read as UTF-8, as bash prints."""
    out = bytearray()
    pos = 0
    for m in _ANSI_RE.finditer(body):
        out += body[pos : m.start()].encode("utf-8", "surrogatepass")
        esc = m.group(1)
        if esc[0] == "x" and len(esc) > 1:
            out.append(int(esc[1:], 16))
        elif esc[0] in "uU" and len(esc) > 1:
            out += chr(int(esc[1:], 16)).encode("utf-8", "surrogatepass")
        elif esc[0] in "01234567":
            out.append(int(esc, 8) & 0xFF)
        elif esc[0] == "c" and len(esc) == 2:
            out.append(ord(esc[1]) & 0x1F)
        else:
            out += _ANSI_SIMPLE.get(esc, "\\" + esc).encode("utf-8", "surrogatepass")
        pos = m.end()
    out += body[pos:].encode("utf-8", "surrogatepass")
    return out.decode("utf-8", "replace")


# ------------------------------------------------------------------------------- expansions

_BRACED_RE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-=?+])([^}]*))?\}")
_PLAIN_RE: Final = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_HEREDOC_RE: Final = re.compile(r"<<(-?)[ \t]*(?:'([^'\n]+)'|\"([^\"\n]+)\"|([A-Za-z0-9_.-]+))")
_COMMAND_VERBS: Final = re.compile(r"^(print|get|cat|echo|show|read|fetch|generate|create)_")


def snake(text: str) -> str:
    """``DO_API_TOKEN`` -> ``do_api_token``, ``apiKey`` -> ``api_key``."""
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    return re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_").lower()


def _command_name(command: str) -> str:
    """A variable name for a command's output: ``gcloud auth print-access-token`` -> access_token."""
    words = [w for w in command.replace("'", " ").replace('"', " ").split() if w[:1] != "-"]
    last = words[-1].rsplit("/", 1)[-1] if words else ""
    last = re.sub(r"\.(txt|json|key|pem|token)$", "", last)
    name = _COMMAND_VERBS.sub("", snake(last))
    return name if re.fullmatch(r"[a-z_][a-z0-9_]*", name or "") else "command_output"


def _closing_paren(text: str, start: int) -> int:
    """The index of the ``)`` that closes the ``(`` at ``start``, or -1."""
    depth, quote_char, i = 0, None, start
    while i < len(text):
        c = text[i]
        if quote_char:
            if c == quote_char:
                quote_char = None
        elif c in "'\"":
            quote_char = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _expansion(text: str, i: int, shell_vars: list[ShellVar]) -> tuple[str, int] | None:
    """``(marker, end)`` for the expansion starting at ``text[i]`` (a ``$`` or a backquote)."""
    var: ShellVar | None = None
    end = i
    if text[i] == "`":
        close = text.find("`", i + 1)
        if close < 0:
            return None
        var = ShellVar(text[i : close + 1], _command_name(text[i + 1 : close]), True)
        end = close + 1
    elif text.startswith("$(", i):
        close = _closing_paren(text, i + 1)
        if close < 0:
            raise CurlParseError(
                "a $( ... ) command substitution is not closed; paste the whole command"
            )
        inner = text[i + 2 : close].strip("() ")
        var = ShellVar(text[i : close + 1], _command_name(inner), True)
        end = close + 1
    elif m := _BRACED_RE.match(text, i):
        var = ShellVar(m.group(0), snake(m.group(1)) or "value", False, m.group(3))
        end = m.end()
    elif m := _PLAIN_RE.match(text, i):
        var = ShellVar(m.group(0), snake(m.group(1)) or "value", False)
        end = m.end()
    if var is None:
        return None
    shell_vars.append(var)
    return f"{MARK}{len(shell_vars) - 1}{MARK}", end


def _quote_single(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _heredoc(text: str, i: int) -> tuple[str, str, int] | None:
    """``(body, text without the body, end of the operator)`` for a ``<<WORD`` at ``text[i]``."""
    m = _HEREDOC_RE.match(text, i)
    if m is None or text.startswith("<<<", i):
        return None
    word = m.group(2) or m.group(3) or m.group(4)
    line_end = text.find("\n", m.end())
    if line_end < 0:
        return "", text, m.end()
    lines = text[line_end + 1 :].split("\n")
    body: list[str] = []
    for k, line in enumerate(lines):
        if (line.lstrip("\t") if m.group(1) else line).rstrip() == word:
            rest = "\n".join(lines[k + 1 :])
            return "\n".join(body) + "\n", text[: line_end + 1] + rest, m.end()
        body.append(line.lstrip("\t") if m.group(1) else line)
    return "\n".join(body) + "\n", text[: line_end + 1], m.end()


def _prepare(text: str, shell_vars: list[ShellVar]) -> str:
    """Text :mod:`shlex` splits as bash would: continuations joined, ``$'...'`` decoded, comments
    dropped, expansions marked, here-documents turned into here-strings, line breaks between
    commands turned into :data:`SEPARATOR` words."""
    out: list[str] = []
    quote_char: str | None = None
    i = 0
    while i < len(text):
        c = text[i]
        word_start = not out or out[-1][-1:] in (" ", "\t", "\n", ";", "|", "&", "(")
        if c == "\\" and quote_char == '"' and text[i + 1 : i + 2] in ("$", "`"):
            out.append(text[i + 1])  # \$ in double quotes: a literal dollar, never expanded
            i += 2
            continue
        if c == "\\" and quote_char != "'":
            if not text.startswith("\n", i + 1):  # a backslash-newline joins two lines
                out.append(text[i : i + 2])
            i += 2
            continue
        if quote_char is None and c == "$" and text.startswith("'", i + 1):
            j = i + 2
            while j < len(text) and text[j] != "'":
                j += 2 if text[j] == "\\" else 1
            if j >= len(text):
                raise CurlParseError(
                    "a $'...' string is not closed; paste the whole command, including the "
                    "closing quote"
                )
            out.append(_quote_single(decode_ansi_c(text[i + 2 : j])))
            i = j + 1
            continue
        if quote_char != "'" and c in "$`":
            found = _expansion(text, i, shell_vars)
            if found is not None:
                out.append(found[0])
                i = found[1]
                continue
        if quote_char is None:
            if c == "#" and word_start:
                end = text.find("\n", i)
                i = len(text) if end < 0 else end
                continue
            if c == "\n":
                out.append(f" {SEPARATOR} ")
                i += 1
                continue
            if c == "<" and text.startswith("<<", i):
                doc = _heredoc(text, i)
                if doc is not None:
                    body, text, end = doc
                    out.append(f" <<< {_quote_single(body)} ")
                    i = end
                    continue
            if c in "'\"":
                quote_char = c
        elif c == quote_char:
            quote_char = None
        out.append(c)
        i += 1
    return "".join(out)


_OPERATORS: Final = frozenset({"|", "||", "&&", ";", "&", SEPARATOR})


def split_commands(command: str) -> tuple[list[list[str]], list[ShellVar]]:
    """The words of each command in the paste (empty commands left out), and its expansions."""
    text = command.replace("\r\n", "\n").replace("\r", "\n").strip()
    text = re.sub(r"^\$\s+", "", text)
    if not text:
        raise CurlParseError(f"the command is empty; paste a curl command such as: {EXAMPLE}")
    if re.match(r"(\S*curl(\.exe)?\s+)?\^\"", text):  # Chrome's "Copy as cURL (cmd)"
        raise CurlParseError(
            "this looks like a Windows cmd command (^ escapes); copy it as cURL (bash) instead"
        )
    shell_vars: list[ShellVar] = []
    lexer = shlex.shlex(_prepare(text, shell_vars), posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        tokens = list(lexer)
    except ValueError as exc:
        raise CurlParseError(
            f"cannot split the command into arguments ({exc}): a ' or \" quote is not closed; "
            "paste the whole command"
        ) from None
    commands: list[list[str]] = [[]]
    for tok in tokens:
        if tok in _OPERATORS:
            if commands[-1]:
                commands.append([])
            if tok != SEPARATOR:
                commands[-1].append(tok)  # kept at the start: the caller says what was ignored
        else:
            commands[-1].append(tok)
    commands = [c for c in commands if c and not (len(c) == 1 and c[0] in _OPERATORS)]
    if not commands:
        raise CurlParseError(f"the command is empty; paste a curl command such as: {EXAMPLE}")
    return commands, shell_vars
