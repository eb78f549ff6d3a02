"""The static contract of customer code (advanced mode, seeds 000/003), checked without running it.

Customer code is hostile: nothing here executes, imports, compiles or ``exec``\\s it. The Python
checks work on the :mod:`ast` tree only (values through :func:`ast.literal_eval`); the JavaScript
check is a small tokenizer. Every broken rule is reported at once, each with its 1-based line.

This module is the public face of the checks; they live in:

* :mod:`.problems`: :class:`CodeProblem`, what is wrong, shared by both languages;
* :mod:`.python_contract`: the Python contract (:func:`check_python`, :func:`python_function`),
  with :mod:`.python_schema` (annotations as JSON Schema) and :mod:`.python_docstring`;
* :mod:`.js_contract`: the JavaScript check (:func:`check_javascript`,
  :func:`javascript_function`), with :mod:`.js_settings` (``__voicefn__`` and the JSDoc).
"""

from __future__ import annotations

from .js_contract import JS_MODULES, JsSignature, check_javascript, javascript_function
from .problems import MAX_CODE_CHARS, CodeProblem, Severity
from .python_contract import (
    MEMORY_MB_MAX,
    MEMORY_MB_MIN,
    PYTHON_PHASES,
    SETTINGS,
    PythonParameter,
    PythonSignature,
    check_python,
    python_function,
)
from .python_schema import ALLOWED_TYPES, ANY_SCHEMA

__all__ = [
    "ALLOWED_TYPES",
    "ANY_SCHEMA",
    "JS_MODULES",
    "MAX_CODE_CHARS",
    "MEMORY_MB_MAX",
    "MEMORY_MB_MIN",
    "PYTHON_PHASES",
    "SETTINGS",
    "CodeProblem",
    "JsSignature",
    "PythonParameter",
    "PythonSignature",
    "Severity",
    "check_javascript",
    "check_python",
    "javascript_function",
    "python_function",
]
