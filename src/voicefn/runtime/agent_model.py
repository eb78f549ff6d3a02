"""The agent's model: :class:`Agent` (system prompt, functions, variables, welcome message,
webhook URL, post-call settings) and its :class:`LLMSettings`, with the keys an agent file may
use (:data:`AGENT_KEYS`, :data:`LLM_KEYS`)."""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..context import CallContext
from ..dialects.llm import dump as llm_dump
from ..spec import Function
from ..templates import render_text
from .postcall_spec import PostCallSettings, PostCallVariable


class LLMSettings(BaseModel):
    """Any OpenAI-compatible chat-completions endpoint. Unset values come from the environment:
    ``VOICEFN_LLM_MODEL``/``OPENAI_MODEL``, ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    base_url: str | None = None
    #: The *name* of the environment variable holding the key (keys do not belong in files).
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tool_rounds: int = Field(default=5, ge=1, le=20)
    timeout_s: float = Field(default=30.0, gt=0)
    #: Retries of a failed LLM request (the SDK's; each costs the caller time on the line).
    max_retries: int = Field(default=1, ge=0, le=5)

    def resolved_model(self) -> str:
        model = self.model or os.environ.get("VOICEFN_LLM_MODEL") or os.environ.get("OPENAI_MODEL")
        if not model:
            raise ValueError(
                "no LLM model configured: set llm.model in the agent file or VOICEFN_LLM_MODEL"
            )
        return model

    def resolved_base_url(self) -> str | None:
        return self.base_url or os.environ.get("OPENAI_BASE_URL")

    def endpoint(self) -> str:
        """The chat-completions endpoint requests go to, for messages."""
        base = (self.resolved_base_url() or "https://api.openai.com/v1").rstrip("/")
        return f"{base}/chat/completions"

    def resolved_api_key(self) -> str:
        # Local servers (Ollama, vLLM, LM Studio) accept any key; the SDK insists on one.
        return os.environ.get(self.api_key_env) or "not-needed"


class Agent(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    name: str = "agent"
    system_prompt: str = "You are a helpful voice assistant. Keep answers short."
    welcome_message: str | None = None
    language: str = "en"
    variables: dict[str, Any] = Field(default_factory=dict)
    webhook_url: str | None = None
    llm: LLMSettings = Field(default_factory=LLMSettings)
    functions: list[Function] = Field(default_factory=list)
    #: Values extracted from the transcript after hang-up (``post_call.<name>`` in mappings).
    post_call_variables: list[PostCallVariable] = Field(default_factory=list)
    #: The built-in extras: ``{summary: true, outcome: true}``.
    post_call: PostCallSettings = Field(default_factory=PostCallSettings)

    def function(self, name: str) -> Function | None:
        return next((f for f in self.functions if f.name == name), None)

    def call_context(self, context: CallContext | None = None) -> CallContext:
        """The context a call with this agent runs in: the agent's variables under the call's
        own, the agent's name as ``agent_id`` and its webhook URL, unless the call sets them."""
        ctx = context or CallContext()
        return CallContext(
            agent_id=ctx.agent_id or self.name,
            call_sid=ctx.call_sid,
            execution_id=ctx.execution_id,
            from_number=ctx.from_number,
            to_number=ctx.to_number,
            variables={**self.variables, **ctx.variables},
            webhook_url=ctx.webhook_url or self.webhook_url,
            workspace_id=ctx.workspace_id,
        )

    def llm_view(
        self, context: CallContext | None = None, dialect: str = "openai"
    ) -> dict[str, Any]:
        """What the LLM sees at the start of a call: the rendered system prompt, the welcome
        message (the first assistant message) and the in-call functions as tools in ``dialect``,
        parameters the context fills left out. Pre-call functions may still change the prompt."""
        ctx = self.call_context(context)
        variables = ctx.as_variables()
        return {
            "system_prompt": render_text(self.system_prompt, variables),
            "welcome_message": render_text(self.welcome_message, variables)
            if self.welcome_message
            else None,
            "tools": [llm_dump(f, dialect, ctx) for f in self.functions if f.phase == "in_call"],
        }


#: Documented in the README ("Agent files"); the order is the order of that table.
AGENT_KEYS: tuple[str, ...] = tuple(Agent.model_fields)
LLM_KEYS: tuple[str, ...] = tuple(LLMSettings.model_fields)
