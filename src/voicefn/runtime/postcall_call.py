"""A finished call: everything post-call work needs to know about it, as plain JSON data
(``to_dict``/``from_dict``), so it can be stored, queued, or reported by a host over HTTP."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..context import CallContext
from ..validation import CALL_SOURCES
from .postcall_record import iso

EndedBy = Literal["caller", "agent", "transfer", "system"]
ENDED_BY: tuple[str, ...] = ("caller", "agent", "transfer", "system")


@dataclass
class FinishedCall:
    """Everything post-call work needs to know about a call, as JSON-able data."""

    execution_id: str
    agent_id: str = "agent"
    call_sid: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    language: str = "en"
    started_at: float = 0.0  #: UNIX seconds
    ended_at: float = 0.0
    ended_by: str = "caller"
    transfer_number: str | None = None
    #: The call's variables at its end: the agent's, the call's, what functions stored.
    variables: dict[str, Any] = field(default_factory=dict)
    #: ``[{"role": "caller" | "agent", "text": ...}]``
    transcript: list[dict[str, str]] = field(default_factory=list)
    #: Pre-call and in-call executions: function, phase, tool_call_id, arguments, ok, status,
    #: error, latency_ms, timings, deduplicated, stored, content (what the LLM read).
    executions: list[dict[str, Any]] = field(default_factory=list)
    workspace_id: str | None = None
    webhook_url: str | None = None

    @property
    def call_id(self) -> str:
        return self.call_sid or self.execution_id

    @property
    def duration_s(self) -> float:
        return round(max(0.0, self.ended_at - self.started_at), 3)

    def facts(self) -> dict[str, Any]:
        """``call.*``: what a mapping reads about the call."""
        out: dict[str, Any] = {
            "id": self.call_id,
            "call_sid": self.call_sid,
            "execution_id": self.execution_id,
            "agent_id": self.agent_id,
            "from_number": self.from_number,
            "to_number": self.to_number,
            "language": self.language,
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "duration_s": self.duration_s,
            "ended_by": self.ended_by,
            "transfer_number": self.transfer_number,
        }
        assert set(out) == set(CALL_SOURCES)  # the validator's list is this one
        return out

    def context(self, hide: Sequence[str] = ()) -> CallContext:
        """The context post-call functions run in; ``hide`` drops variables a mapping fills
        (the mapping wins over a variable of the same name)."""
        return CallContext(
            agent_id=self.agent_id,
            call_sid=self.call_sid,
            execution_id=self.execution_id,
            from_number=self.from_number,
            to_number=self.to_number,
            variables={k: v for k, v in self.variables.items() if k not in hide},
            webhook_url=self.webhook_url,
            workspace_id=self.workspace_id,
        )

    def caller_spoke(self) -> bool:
        return any(t.get("role") == "caller" and t.get("text") for t in self.transcript)

    def to_dict(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "agent_id": self.agent_id,
            "call_sid": self.call_sid,
            "from_number": self.from_number,
            "to_number": self.to_number,
            "language": self.language,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "ended_by": self.ended_by,
            "transfer_number": self.transfer_number,
            "variables": dict(self.variables),
            "transcript": [dict(t) for t in self.transcript],
            "executions": [dict(e) for e in self.executions],
            "workspace_id": self.workspace_id,
            "webhook_url": self.webhook_url,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinishedCall:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})
