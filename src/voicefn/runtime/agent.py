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
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..dialects import load_functions, validate
from ..spec import Function
from ..validation import FunctionValidationError, Problem


class LLMSettings(BaseModel):
    """Any OpenAI-compatible chat-completions endpoint. Unset values come from the environment:
    ``VOICEFN_LLM_MODEL``/``OPENAI_MODEL``, ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    base_url: str | None = None
    #: The *name* of the environment variable holding the key (keys do not belong in files).
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float | None = None
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

    def function(self, name: str) -> Function | None:
        return next((f for f in self.functions if f.name == name), None)


def _load_entry(entry: Any, base: Path, index: int, variables: list[str]) -> list[Function]:
    if isinstance(entry, str):
        return load_functions(base / entry, variables=variables)
    report = validate(entry, variables=variables)
    if report.function is None:
        problems = [
            Problem(f"$.functions[{index}]{p.path[1:]}", p.message, p.fix, p.found, p.severity)
            for p in report.problems
        ]
        raise FunctionValidationError(problems)
    return [report.function]


def load_agent(source: str | Path | dict[str, Any]) -> Agent:
    """Load an agent from a YAML/JSON file or a dict; raises FunctionValidationError or
    ValueError with every problem listed."""
    base = Path.cwd()
    label = None
    if isinstance(source, str | Path):
        path = Path(source)
        base, label = path.parent, str(path)
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    else:
        data = source
    if not isinstance(data, dict):
        raise ValueError(f"{label or 'agent'}: an agent must be an object")
    raw_functions = data.get("functions") or []
    variables = list((data.get("variables") or {}).keys())
    functions: list[Function] = []
    problems: list[Problem] = []
    for i, entry in enumerate(raw_functions):
        try:
            functions += _load_entry(entry, base, i, variables)
        except FunctionValidationError as exc:
            where = f"{exc.source}: " if exc.source else ""
            problems += [
                Problem(p.path, f"{where}{p.message}", p.fix, p.found, p.severity)
                for p in exc.problems
            ]
    names = [f.name for f in functions]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(Problem("$.functions", f"two functions are named {dup!r}", "rename one"))
    if any(p.severity == "error" for p in problems):
        raise FunctionValidationError(problems, label)
    try:
        return Agent.model_validate({**data, "functions": functions})
    except ValidationError as exc:
        raise ValueError(f"{label or 'agent'}: {exc}") from None
