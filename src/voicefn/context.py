"""The call a function runs in: system variables and the call's dynamic variables."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Variables every call has (seed 001/002: "Auto-Injected System Variables").
SYSTEM_VARIABLES: tuple[str, ...] = (
    "agent_id",
    "call_sid",
    "execution_id",
    "from_number",
    "to_number",
)


@dataclass(frozen=True, slots=True)
class CallContext:
    """What the engine knows about the current call, independent of what the LLM says.

    A function parameter whose name is a variable set here is filled from the context and hidden
    from the LLM, so the caller is never asked for it and the LLM cannot override it.
    """

    agent_id: str | None = None
    call_sid: str | None = None
    execution_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    from_number: str | None = None
    to_number: str | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    #: The agent-level webhook URL: where a pre-call webhook goes when a function names no URL.
    webhook_url: str | None = None
    #: The workspace (tenant) the call belongs to; keys sandbox workers and connection pools.
    workspace_id: str | None = None

    def lookup(self, name: str) -> tuple[bool, Any]:
        """``(True, value)`` when the call provides ``name``; ``(False, None)`` otherwise."""
        if name in SYSTEM_VARIABLES:
            value = getattr(self, name)
            return (value is not None, value)
        if name in self.variables:
            value = self.variables[name]
            return (value is not None, value)
        return (False, None)

    def as_variables(self) -> dict[str, Any]:
        """Every variable that has a value: system variables first, then dynamic ones."""
        out: dict[str, Any] = {
            name: getattr(self, name)
            for name in SYSTEM_VARIABLES
            if getattr(self, name) is not None
        }
        out.update((k, v) for k, v in self.variables.items() if v is not None)
        return out

    @property
    def call_id(self) -> str:
        """The id that names this call on the wire: the telephony call id, else the execution id."""
        return self.call_sid or self.execution_id
