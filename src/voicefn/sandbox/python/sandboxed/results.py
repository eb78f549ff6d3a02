"""What the child reports: the result (checked before it is sent) or a safe error detail."""

from __future__ import annotations

import errno
import json
from typing import Any

from .egress import EgressRefused

#: The file name user code is compiled under: its lines are the only ones an error detail names.
FILENAME = "<function>"
#: errnos that tell which layer refused something (the supervisor maps them)
KNOWN_ERRNOS = frozenset({errno.EPERM, errno.ENOENT, errno.EROFS, errno.EACCES, errno.EMFILE})
MAX_DETAIL_CHARS = 1000
MEMORY_ERROR: dict[str, Any] = {
    "t": "error",
    "kind": "memory",
    "detail": "MemoryError",
    "cause": "memory",
}


def result_frame(value: Any, max_output: int) -> dict[str, Any] | bytes:
    """The encoded ``result`` frame, or an ``invalid_output`` error message."""

    def invalid(why: str) -> dict[str, Any]:
        return {"t": "error", "kind": "invalid_output", "detail": why}

    if not isinstance(value, dict):
        return invalid(f"the function returned {type(value).__name__}, not a dict")
    if _too_big(value, max_output):
        return invalid(f"the result is larger than {max_output} bytes")
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        data = text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        return invalid(f"the result is not JSON: {describe(exc)}")
    if len(data) > max_output:
        return invalid(f"the result is {len(data)} bytes; the limit is {max_output}")
    return b'{"t":"result","value":' + data + b"}"


def _too_big(value: Any, limit: int) -> bool:
    """A cheap lower bound of the JSON size, to refuse huge results before encoding them."""
    total = 0
    stack = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if isinstance(item, dict | list | tuple):
            if id(item) in seen:
                continue  # shared or circular: json.dumps and the exact size check decide
            seen.add(id(item))
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, dict):
            total += 2 + len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            total += 2 + len(item)
            stack.extend(item)
        else:
            total += 1
        if total > limit:
            return True
    return False


def _user_line(exc: BaseException) -> int | None:
    if isinstance(exc, SyntaxError) and exc.filename == FILENAME:
        return exc.lineno
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def classify(exc: BaseException) -> tuple[str | None, int | None]:
    """What most likely raised ``exc`` (or its causes), as facts for the supervisor, which picks
    the layer (``stopped_by``): ``("egress", None)``, ``("memory", None)``, ``("threads", None)``,
    ``("errno", n)`` or ``(None, None)``."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            break
        if isinstance(seen, EgressRefused):
            return "egress", None
        if isinstance(seen, MemoryError):
            return "memory", None
        if isinstance(seen, OSError) and seen.errno in KNOWN_ERRNOS:
            return "errno", seen.errno
        if isinstance(seen, RuntimeError) and "can't start new thread" in str(seen):
            return "threads", None
        seen = seen.__cause__ or seen.__context__
    return None, None


def describe(exc: BaseException) -> str:
    """``ExcType: message (line N)``, with user-code lines only."""
    name = type(exc).__name__
    try:
        text = exc.msg if isinstance(exc, SyntaxError) and exc.msg else str(exc)
    except Exception:
        text = "(unprintable)"
    detail = f"{name}: {text}" if text else name
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[:MAX_DETAIL_CHARS] + "..."
    line = _user_line(exc)
    return f"{detail} (line {line})" if line else detail
