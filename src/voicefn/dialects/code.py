"""Source files as functions: a ``.py`` file (seed 003's contract) or a ``.js`` post-call function.

The code is analysed, never run: its signature and docstring give the Function's name,
description and JSON Schema, so it is a Function like any other (same dialect export, same LLM
rendering, same ToolResult). An optional literal ``__voicefn__ = {"phase": ..., "filler": ...}``
(``const __voicefn__ = {...}`` in JavaScript) sets the other fields.
"""

from __future__ import annotations

from typing import Any

from ..validation import Locate, Problem

NAMES = ("python", "javascript")
SUFFIXES = {".py": "python", ".js": "javascript", ".mjs": "javascript"}


def locate(path: Any) -> Any:
    return path


def source_document(code: str, language: str) -> dict[str, Any]:
    """The marker a file reader returns for source code; ``to_canonical`` turns it into a doc."""
    return {"$source": code, "$language": language}


def detect(data: dict[str, Any]) -> str | None:
    language = data.get("$language")
    return language if "$source" in data and language in NAMES else None


def to_canonical(data: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    from ..sandbox.contract import javascript_function, python_function  # only code pays

    code = str(data["$source"])
    if data["$language"] == "python":
        doc, problems = python_function(code)
    else:
        doc, problems = javascript_function(code)
    found = [
        Problem(f"line {p.line}" if p.line else "$", p.message, p.fix, None, p.severity)
        for p in problems
    ]
    # The document's own code check would report the same lines again under $.action.code.
    out = dict(doc or {"name": "", "action": {"type": data["$language"], "code": code}})
    return out, found


_: Locate = locate
