"""``store:``: the call variables a function sets from its response with JMESPath."""

from __future__ import annotations

import re
from typing import Any

from ..context import SYSTEM_VARIABLES
from .problems import Collector, Path

#: A call variable's name: what ``{name}`` and ``variables.name`` can refer to.
VARIABLE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def check_store(store: Any, phase: Any, action: Any, out: Collector) -> None:
    """``store: {variable: "<JMESPath>"}``: names a variable can have, expressions that parse."""
    if not isinstance(store, dict):
        out.add(
            ("store",),
            "store must be an object of variable names and JMESPath expressions",
            'write e.g. store: {order_status: "status", carrier: "shipment.carrier"}',
            store if isinstance(store, str | int | float | bool) else None,
        )
        return
    if phase == "post_call":
        out.add(
            ("store",),
            "a post-call function runs after the call: nothing is left to use stored values",
            "remove store, or map the values this function needs with mapping:",
        )
        return
    if isinstance(action, dict) and action.get("type") == "builtin":
        out.add(
            ("store",),
            "builtin functions return no response to store values from",
            "remove store",
        )
        return
    import jmespath
    from jmespath.exceptions import JMESPathError

    for name, expression in store.items():
        path: Path = ("store", str(name))
        if not VARIABLE_NAME_RE.fullmatch(str(name)):
            fixed = re.sub(r"[^A-Za-z0-9_]+", "_", str(name)).strip("_") or "value"
            if fixed[0].isdigit():
                fixed = f"v_{fixed}"
            out.add(
                path,
                "a variable name is letters, digits and '_', not starting with a digit",
                f"use {fixed[:64]!r}",
                name,
            )
        elif name in SYSTEM_VARIABLES:
            out.add(
                path,
                f"{name} is a system variable: the call sets it, a function cannot",
                f"store it under another name, e.g. 'stored_{name}'",
                name,
            )
        if not isinstance(expression, str) or not expression.strip():
            out.add(
                path,
                "the value is a JMESPath expression into the function's response, as text",
                'write e.g. "status", "items[0].id" or "length(items)"',
                expression if isinstance(expression, int | float | bool) else None,
            )
            continue
        try:
            jmespath.compile(expression)
        except JMESPathError as exc:
            detail = " ".join(str(exc).split())
            out.add(
                path,
                f"not a valid JMESPath expression: {detail}",
                "check the expression at jmespath.org (e.g. shipment.carrier, items[0].id; "
                'quote names with dashes: "order-id")',
                expression,
            )
