"""The Agent: system prompt, functions, variables, welcome message, webhook URL, LLM settings.

An agent file (YAML or JSON) lists or embeds its functions in any dialect::

    name: store-agent
    system_prompt: You are Sam from Acme, speaking to {customer_name}.
    welcome_message: Hi {customer_name}, this is Sam from Acme. How can I help?
    language: en
    variables: {customer_name: there}
    webhook_url: https://hooks.example.com/voicefn
    llm: {model: gpt-4o-mini, base_url: http://localhost:11434/v1, temperature: 0.3}
    functions:
      - functions/check_order_status.json     # a path, relative to this file
      - {name: end_call, description: ..., action: {type: builtin, builtin: end_call}}

:func:`validate_agent` checks an agent and every function in it and never raises; every problem
has the same path / found / fix form as a function's. :func:`load_agent` raises
:class:`~voicefn.validation.FunctionValidationError` listing them.

The model lives in :mod:`.agent_model`, validating and loading in :mod:`.agent_validate`, the
``functions`` list in :mod:`.agent_functions` and the checks of the agent's settings in
:mod:`.agent_checks`; this module gathers the names.
"""

from __future__ import annotations

from .agent_functions import FunctionEntry
from .agent_model import AGENT_KEYS, LLM_KEYS, Agent, LLMSettings
from .agent_validate import AgentReport, load_agent, validate_agent

__all__ = [
    "AGENT_KEYS",
    "LLM_KEYS",
    "Agent",
    "AgentReport",
    "FunctionEntry",
    "LLMSettings",
    "load_agent",
    "validate_agent",
]
