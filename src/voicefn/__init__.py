"""voicefn: the open-source custom-functions engine for voice AI agents."""

from .arguments import ArgumentError, bind
from .context import SYSTEM_VARIABLES, CallContext
from .dialects import DIALECTS, Report, dump, load_function, load_functions, validate
from .dialects.llm import llm_parameters
from .egress import EgressDenied, EgressPolicy
from .executor import Executor
from .results import RequestRecord, Timings, ToolResult
from .spec import Function, HttpAction
from .validation import FunctionValidationError, Problem

__version__ = "0.1.0"

__all__ = [
    "DIALECTS",
    "SYSTEM_VARIABLES",
    "ArgumentError",
    "CallContext",
    "EgressDenied",
    "EgressPolicy",
    "Executor",
    "Function",
    "FunctionValidationError",
    "HttpAction",
    "Problem",
    "Report",
    "RequestRecord",
    "Timings",
    "ToolResult",
    "__version__",
    "bind",
    "dump",
    "llm_parameters",
    "load_function",
    "load_functions",
    "validate",
]
