"""The in-call runtime: agents, the streaming LLM loop, events and the call simulator."""

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
from .session import CallSession, ExecutionRecord

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
