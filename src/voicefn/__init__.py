"""voicefn: the open-source custom-functions engine for voice AI agents."""

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

__version__ = "0.1.0"

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
