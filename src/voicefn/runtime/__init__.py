"""The in-call runtime: agents, the streaming LLM loop, events and the call simulator.

``CallSession``, ``ExecutionRecord``, ``LLMClient`` and ``LLMError`` (which need the HTTP client
stack) are imported when first used, so loading an agent file does not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .agent import Agent, LLMSettings, load_agent
from .events import (
    AgentMessage,
    AgentTextDelta,
    CallEnded,
    ErrorEvent,
    Event,
    ExecutionTimings,
    Filler,
    FunctionFinished,
    FunctionStarted,
    PostCallFinished,
    SmsRequested,
    TransferRequested,
    TurnFinished,
    TurnInterrupted,
)

if TYPE_CHECKING:
    from .llm_client import LLMClient, LLMError
    from .session import CallSession, ExecutionRecord

_LAZY = {
    "CallSession": "session",
    "ExecutionRecord": "session",
    "LLMClient": "llm_client",
    "LLMError": "llm_client",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        from importlib import import_module

        value = getattr(import_module(f".{module}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'voicefn.runtime' has no attribute {name!r}")


__all__ = [
    "Agent",
    "AgentMessage",
    "AgentTextDelta",
    "CallEnded",
    "CallSession",
    "ErrorEvent",
    "Event",
    "ExecutionRecord",
    "ExecutionTimings",
    "Filler",
    "FunctionFinished",
    "FunctionStarted",
    "LLMClient",
    "LLMError",
    "LLMSettings",
    "PostCallFinished",
    "SmsRequested",
    "TransferRequested",
    "TurnFinished",
    "TurnInterrupted",
    "load_agent",
]
