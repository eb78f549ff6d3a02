r"""Pydantic's validation errors as :class:`Problem`\ s: paths in the user's document (no union
member names), unknown fields with a did-you-mean, fixes fitted to why a value was refused."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..spec import BuiltinAction, Function, HttpAction, McpAction
from .hints import did_you_mean, value_fix
from .problems import Locate, Path, Problem, json_path


def document_path(data: Any, loc: Iterable[str | int]) -> Path:
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


def from_pydantic(loc: Path, err: Any, locate: Locate) -> Problem:
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
