"""The typed event stream of a call: what the host speaks, shows and carries out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..results import ToolResult

if TYPE_CHECKING:
    from .postcall import PostCallReport


@dataclass(frozen=True, slots=True)
class AgentTextDelta:
    """A piece of the agent's reply as the LLM streams it (speak it as it comes)."""

    text: str


@dataclass(frozen=True, slots=True)
class AgentMessage:
    """The agent's whole reply of one LLM response, once it is complete."""

    text: str


@dataclass(frozen=True, slots=True)
class Filler:
    """Say this now, while the function runs (emitted as soon as the tool name is known)."""

    text: str
    function: str
    tool_call_id: str


@dataclass(frozen=True, slots=True)
class FunctionStarted:
    function: str
    tool_call_id: str
    arguments: dict[str, Any] | str


@dataclass(frozen=True, slots=True)
class ExecutionTimings:
    """Milliseconds, measured from the moment the LLM request of that response was sent."""

    time_to_filler_ms: float | None
    time_to_request_ms: float | None  # until the function's request was handed to the client
    request_ms: float | None  # the function's own latency
    time_to_first_token_ms: float | None = None  # from the result to the answer's first token


@dataclass(frozen=True, slots=True)
class FunctionFinished:
    function: str
    tool_call_id: str
    result: ToolResult
    latency_ms: float
    timings: ExecutionTimings
    deduplicated: bool = False  # not sent again: the same call already ran in this conversation


@dataclass(frozen=True, slots=True)
class TransferRequested:
    number: str
    reason: str | None
    call_sid: str | None
    function: str


@dataclass(frozen=True, slots=True)
class SmsRequested:
    to: str
    from_: str | None
    body: str
    function: str


@dataclass(frozen=True, slots=True)
class CallEnded:
    reason: str
    message: str | None = None  # the goodbye line to say before hanging up


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """Something went wrong that the call survives (the LLM endpoint failed, a host error...)."""

    message: str
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class TurnInterrupted:
    """The host cancelled the turn (barge-in). Functions already sent keep running."""

    pending_functions: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TurnFinished:
    rounds: int
    ttft_ms: float | None  # from the caller's words to the agent's first token


@dataclass(frozen=True, slots=True)
class PostCallFinished:
    """The post-call work is done (``finish()``'s last event): the extracted variables, each
    post-call function's outcome, the execution record and how its delivery went."""

    report: PostCallReport


Event = (
    AgentTextDelta
    | AgentMessage
    | Filler
    | FunctionStarted
    | FunctionFinished
    | TransferRequested
    | SmsRequested
    | CallEnded
    | ErrorEvent
    | TurnInterrupted
    | TurnFinished
    | PostCallFinished
)
