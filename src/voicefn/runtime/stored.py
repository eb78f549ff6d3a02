"""``store:`` at run time: a successful result's values join the call's variables.

One function for every host of a call (:class:`~voicefn.runtime.session.CallSession`, the
LiveKit and Pipecat adapters), so that later functions' templates and fillers, the prompt and the
post-call mapping (``variables.*``) see the same values whichever runs the call.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from ..context import CallContext
from ..results import ToolResult
from ..spec import Function
from .postcall import stored_values

log = logging.getLogger("voicefn.runtime")


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
