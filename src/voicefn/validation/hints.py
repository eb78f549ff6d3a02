"""Fix hints: the name a misspelling meant, the fix for a value pydantic refused."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt name, or None."""
    options = list(dict.fromkeys(c for c in candidates if c != name))
    for c in options:
        if c.lower() == name.lower():
            return c
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return close[0] if close else None


#: What YAML 1.1 reads as a boolean when it is not quoted.
_YAML_BOOLEANS = "yes, no, on, off, y, n, true, false"


def value_fix(kind: str, ctx: dict[str, Any], found: Any) -> str:
    """The fix line for a value pydantic refused, fitted to why it was refused."""
    bounds = {
        "greater_than": ("greater than", "gt"),
        "greater_than_equal": ("at least", "ge"),
        "less_than": ("less than", "lt"),
        "less_than_equal": ("at most", "le"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        limit = ctx.get(key)
        return f"use a number {words} {limit}" if limit is not None else "use a number in range"
    if kind == "string_type" and isinstance(found, bool):
        return (
            f'write it as text; in YAML quote it ("{"yes" if found else "no"}"): '
            f"unquoted {_YAML_BOOLEANS} are read as true/false"
        )
    if kind == "string_type" and isinstance(found, int | float):
        return f'write it as text; in YAML quote it ("{found}")'
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "use a whole number, e.g. 5000"
    if kind in ("float_type", "float_parsing"):
        return "use a number, e.g. 0.5"
    if kind in ("bool_type", "bool_parsing"):
        return "use true or false"
    if kind in ("dict_type", "model_type"):
        return "use an object (key: value pairs)"
    if kind == "list_type":
        return "use a list, e.g. [a, b] (or one '- item' per line in YAML)"
    return "give a value of the expected type"
