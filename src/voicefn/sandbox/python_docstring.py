"""Docstrings of Python customer code: the summary (the function's description) and the
per-parameter descriptions of a Google-style ``Args:`` section (or ``:param name:`` lines)."""

from __future__ import annotations

import re

_SECTION = re.compile(r"^([A-Z][A-Za-z ]{0,30}):\s*$")
_ARG_SECTIONS = frozenset({"args", "arguments", "parameters", "params", "keyword args"})
_ENTRY = re.compile(r"^(\*{0,2}[A-Za-z_]\w*)\s*(?:\([^)]*\))?\s*:(?:\s+(.*))?$")
_SPHINX = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


def parse_docstring(text: str) -> tuple[str, dict[str, str]]:
    """The summary (first paragraph, one line) and the Google-style ``Args:`` descriptions
    (``:param name:`` lines are understood too)."""
    lines = text.splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line) or line.startswith(":"):
            break
        summary.append(line.strip())
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    indent_of_entries: int | None = None
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if m := _SPHINX.match(stripped):
            args[m[1]] = m[2].strip()
            section = current = None
            continue
        if indent == 0 and (m := _SECTION.match(line)):
            section, current, indent_of_entries = m[1].strip().lower(), None, None
            continue
        if section not in _ARG_SECTIONS or not stripped:
            continue
        if indent == 0:
            section = None
            continue
        if indent_of_entries is None:
            indent_of_entries = indent
        if indent <= indent_of_entries and (m := _ENTRY.match(stripped)):
            current = m[1]
            args[current] = (m[2] or "").strip()
        elif current is not None and indent > indent_of_entries:
            args[current] = f"{args[current]} {stripped}".strip()
    return " ".join(summary), {k: v for k, v in args.items() if v}
