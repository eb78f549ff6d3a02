"""Placeholders in templates: ``%(parameter)s`` names a declared parameter with a supported
specifier, ``{variable}`` a context variable."""

from __future__ import annotations

from typing import Any

from ..context import SYSTEM_VARIABLES
from ..templates import CONVERSIONS, Specifier, Variable
from .hints import did_you_mean
from .problems import Collector, Path


def check_placeholder(
    ph: Specifier | Variable,
    path: Path,
    props: dict[str, Any],
    variables: set[str],
    out: Collector,
) -> None:
    known_vars = set(SYSTEM_VARIABLES) | variables
    if isinstance(ph, Variable):
        if ph.name in known_vars:
            return
        if ph.name in props:
            out.add(
                path,
                f"{ph.text} is a context variable placeholder, but {ph.name!r} is a parameter",
                f"use %({ph.name})s for parameters the LLM fills",
            )
            return
        hint = did_you_mean(ph.name, known_vars)
        if hint:
            out.add(
                path,
                f"unknown context variable {ph.text}",
                f"did you mean {{{hint}}}? Variable names must match exactly",
                ph.text,
            )
        else:
            out.add(
                path,
                f"{ph.text} is not a system variable, so every call must pass it as a dynamic variable",
                f"pass it per call (--var {ph.name}=...) or declare it in the agent's variables",
                severity="warning",
            )
        return
    if not ph.name:
        out.add(path, f"{ph.text} names no parameter", "write %(parameter_name)s", ph.text)
        return
    if ph.conv not in CONVERSIONS:
        out.add(
            path,
            f"{ph.text} has no supported format specifier",
            f"use %({ph.name})s for text, %({ph.name})i for integers or %({ph.name})f for numbers",
            ph.text,
        )
    if ph.name in props:
        declared = props[ph.name].get("type") if isinstance(props[ph.name], dict) else None
        if ph.json_type in ("integer", "number") and declared in (
            "string",
            "boolean",
            "array",
            "object",
        ):
            out.add(
                path,
                f"{ph.text} formats a number but {ph.name!r} is declared as {declared}",
                f"use %({ph.name})s, or declare {ph.name!r} as integer/number",
                ph.text,
                "warning",
            )
        return
    if ph.name in known_vars:
        return
    hint = did_you_mean(ph.name, [*props, *known_vars])
    fix = (
        f"did you mean %({hint})s? Parameter names must match exactly (case-sensitive)"
        if hint
        else f"declare {ph.name!r} under parameters.properties, or fix the placeholder"
    )
    out.add(path, f"{ph.text} names no declared parameter or context variable", fix, ph.text)
