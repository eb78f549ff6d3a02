"""``store:`` at run time: a successful result's values join the call's variables.

One function for every host of a call (:class:`~voicefn.runtime.session.CallSession`, the
LiveKit and Pipecat adapters), so that later functions' templates and fillers, the prompt and the
post-call mapping (``variables.*``) see the same values whichever runs the call.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import replace
from typing import Any

from ..context import CallContext
from ..results import ToolResult
from ..spec import Function

log = logging.getLogger("voicefn.runtime")
#: A failed ``store:`` expression has always been logged here.
_store_log = logging.getLogger("voicefn.postcall")


def store_result(
    context: CallContext, function: Function, result: ToolResult
) -> tuple[CallContext, dict[str, Any]]:
    """The call's context with ``function``'s ``store:`` values from ``result`` among its
    variables, and those values (empty: nothing stored, and ``context`` itself comes back).
    Never raises: a bad expression is logged and stores nothing, the call goes on."""
    if not function.store:
        return context, {}
    try:
        values = stored_values(function, result)
    except Exception:  # never let a bad expression end the call
        log.exception("%s: storing values from its result failed", function.name)
        return context, {}
    if not values:
        return context, {}
    return replace(context, variables={**context.variables, **values}), values


def stored_values(function: Function, result: ToolResult) -> dict[str, Any]:
    """``store: {variable: "<JMESPath>"}`` applied to a successful result's response: the
    values found (an expression that finds nothing, or null, stores nothing)."""
    if not function.store or not result.ok:
        return {}
    data = result.data
    if isinstance(data, str):  # a JSON text answer the runner kept as text
        with contextlib.suppress(ValueError):
            data = json.loads(data)
    out: dict[str, Any] = {}
    for name, expression in function.store.items():
        try:
            value = _compiled(expression).search(data)
        except Exception as exc:  # a JMESPath function given the wrong type, say
            _store_log.warning("%s: store %s (%s) failed: %s", function.name, name, expression, exc)
            continue
        if value is not None:
            out[name] = value
    return out


_COMPILED: dict[str, Any] = {}


def _compiled(expression: str) -> Any:
    found = _COMPILED.get(expression)
    if found is None:
        import jmespath

        if len(_COMPILED) > 4096:
            _COMPILED.clear()
        found = _COMPILED[expression] = jmespath.compile(expression)
    return found
