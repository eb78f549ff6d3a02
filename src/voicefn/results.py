"""What one invocation produced: the text the LLM reads, the (redacted) request, timings."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_RESULT_MAX_BYTES = 16 * 1024


@dataclass(slots=True)
class RequestRecord:
    """The request as it was sent, with secrets replaced by ``[redacted]``."""

    method: str
    url: str
    headers: dict[str, str]
    body: Any = None


@dataclass(slots=True)
class Timings:
    """Milliseconds. ``time_to_request_ms`` runs from ``run()`` being called to the request
    being handed to the HTTP client; ``request_ms`` from then to the whole body read."""

    started_at: float = 0.0  # UNIX time
    bind_ms: float = 0.0
    render_ms: float = 0.0
    time_to_request_ms: float | None = None
    request_ms: float | None = None
    total_ms: float = 0.0


@dataclass(slots=True)
class ToolResult:
    """The outcome of running a function once. ``content`` is exactly what the LLM reads."""

    function: str
    ok: bool
    content: str
    data: Any = None
    status: int | None = None
    error: str | None = None
    request: RequestRecord | None = None
    timings: Timings = field(default_factory=Timings)
    truncated: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)
    from_context: list[str] = field(default_factory=list)
    ignored_arguments: list[str] = field(default_factory=list)
    #: For builtin functions: what the host must do (end, transfer, send an SMS).
    directive: dict[str, Any] | None = None
    #: For code functions: the lines the code logged, and how the sandbox ran it.
    logs: list[dict[str, Any]] = field(default_factory=list)
    sandbox: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bounded(text: str, limit: int = DEFAULT_RESULT_MAX_BYTES) -> tuple[str, bool]:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes, marking the cut so the LLM knows."""
    if len(text) * 4 <= limit:  # cheap exit: cannot exceed the limit
        return text, False
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text, False
    cut = raw[:limit].decode("utf-8", errors="ignore")
    return f"{cut}\n[truncated: showing {limit} of {len(raw)} bytes]", True


def error_content(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
