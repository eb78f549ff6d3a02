"""The in-call runtime: agents, the streaming LLM loop, events and the call simulator.

``CallSession`` and ``ExecutionRecord`` (which need the ``openai`` client) are imported when first
used, so loading an agent file does not pay for the LLM client.
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
    SmsRequested,
    TransferRequested,
    TurnFinished,
    TurnInterrupted,
)

if TYPE_CHECKING:
    from .session import CallSession, ExecutionRecord


def __getattr__(name: str) -> Any:
    if name in ("CallSession", "ExecutionRecord"):
        from . import session

        value = getattr(session, name)
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
    "LLMSettings",
    "SmsRequested",
    "TransferRequested",
    "TurnFinished",
    "TurnInterrupted",
    "load_agent",
]
