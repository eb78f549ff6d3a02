"""voicefn: the open-source custom-functions engine for voice AI agents.

Names are imported when first used (PEP 562), so ``import voicefn`` and the command line do not
pay for the LLM client or the HTTP engine until they are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .arguments import ArgumentError, bind
    from .context import SYSTEM_VARIABLES, CallContext
    from .dialects import DIALECTS, Report, dump, load_function, load_functions, validate
    from .dialects.llm import llm_parameters
    from .egress import EgressDenied, EgressPolicy
    from .executor import Executor
    from .results import RequestRecord, Timings, ToolResult
    from .runtime import Agent, CallSession, LLMSettings, load_agent
    from .spec import BuiltinAction, Function, HttpAction
    from .validation import FunctionValidationError, Problem

_WHERE: dict[str, str] = {
    "ArgumentError": "arguments",
    "bind": "arguments",
    "SYSTEM_VARIABLES": "context",
    "CallContext": "context",
    "DIALECTS": "dialects",
    "Report": "dialects",
    "dump": "dialects",
    "load_function": "dialects",
    "load_functions": "dialects",
    "validate": "dialects",
    "llm_parameters": "dialects.llm",
    "EgressDenied": "egress",
    "EgressPolicy": "egress",
    "Executor": "executor",
    "RequestRecord": "results",
    "Timings": "results",
    "ToolResult": "results",
    "Agent": "runtime.agent",
    "LLMSettings": "runtime.agent",
    "load_agent": "runtime.agent",
    "CallSession": "runtime.session",
    "BuiltinAction": "spec",
    "Function": "spec",
    "HttpAction": "spec",
    "FunctionValidationError": "validation",
    "Problem": "validation",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'voicefn' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


__all__ = [
    "DIALECTS",
    "SYSTEM_VARIABLES",
    "Agent",
    "ArgumentError",
    "BuiltinAction",
    "CallContext",
    "CallSession",
    "EgressDenied",
    "EgressPolicy",
    "Executor",
    "Function",
    "FunctionValidationError",
    "HttpAction",
    "LLMSettings",
    "Problem",
    "Report",
    "RequestRecord",
    "Timings",
    "ToolResult",
    "__version__",
    "bind",
    "dump",
    "llm_parameters",
    "load_agent",
    "load_function",
    "load_functions",
    "validate",
]
