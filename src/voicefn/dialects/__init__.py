"""Dialects: outside formats for a function, converted to and from the canonical model.

Loadable (they carry an action): ``voicefn``, ``bolna``, ``call2me``, ``callkaro``.
Dump-only (what an LLM sees): ``openai``, ``openai-responses``, ``anthropic``, ``gemini``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from ..context import CallContext
from ..spec import Function
from ..validation import FunctionValidationError, Problem, validate_document
from . import bolna, call2me, callkaro, code, llm, native

LOADABLE: dict[str, ModuleType] = {
    "voicefn": native,
    "bolna": bolna,
    "call2me": call2me,
    "callkaro": callkaro,
}
DIALECTS: tuple[str, ...] = (*LOADABLE, *llm.NAMES)


@dataclass
class Report:
    """The outcome of validating one function document."""

    dialect: str | None
    function: Function | None
    problems: list[Problem] = field(default_factory=list)
    source: str | None = None

    @property
    def ok(self) -> bool:
        return self.function is not None and not self.errors

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


def detect(data: Any) -> str | None:
    """The dialect a document is written in, or None."""
    if not isinstance(data, dict):
        return None
    source = code.detect(data)
    if source is not None:
        return source
    if data.get("type") == "function":
        return "openai" if "function" in data else "openai-responses"
    if "input_schema" in data:
        return "anthropic"
    for name in ("voicefn", "bolna", "callkaro", "call2me"):
        if LOADABLE[name].detect(data):
            return name
    if {"name", "parameters"} <= data.keys():
        return "gemini"  # a bare function declaration: name, description, parameters
    return None


def validate(
    data: Any,
    dialect: str | None = None,
    *,
    variables: Iterable[str] = (),
    source: str | None = None,
) -> Report:
    """Validate a document in any loadable dialect; every problem is reported at once."""
    name = dialect or detect(data)
    if name in code.NAMES and isinstance(data, dict):
        doc, problems = code.to_canonical(data)
        if any(p.severity == "error" for p in problems):
            return Report(name, None, problems, source)  # the code's own lines say it all
        function, more = validate_document(doc, variables=variables)
        # The document's check of the same code would repeat each line under $.action.code.
        problems += [p for p in more if p.path != "$.action.code"]
        return Report(
            name,
            None if any(p.severity == "error" for p in problems) else function,
            problems,
            source,
        )
    if name is None or name not in LOADABLE:
        if name in llm.NAMES:
            msg = "this is an LLM tool schema: it says what the LLM sees but not what to call"
            fix = "add the API configuration, e.g. write it as a Bolna custom_task with a value object"
        else:
            msg = "cannot tell which dialect this function is written in"
            fix = 'use a Bolna ("key": "custom_task"), Call2Me (url + speak_during_execution), CallKaro (api_url) or voicefn (action) document'
        return Report(name, None, [Problem("$", msg, fix)], source)
    module = LOADABLE[name]
    doc, problems = module.to_canonical(data) if isinstance(data, dict) else (data, [])
    locate = module.locate_for(data) if hasattr(module, "locate_for") else module.locate
    function, more = validate_document(doc, locate=locate, variables=variables)
    reported = {p.path for p in problems if p.severity == "error"}
    problems = problems + [p for p in more if not (p.severity == "error" and p.path in reported)]
    if any(p.severity == "error" for p in problems):
        function = None
    return Report(name, function, problems, source)


def read_documents(path: str | Path) -> list[Any]:
    """The function documents in a JSON or YAML file: one object, or a list of them."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() in code.SUFFIXES:
        return [code.source_document(text, code.SUFFIXES[p.suffix.lower()])]
    try:
        data = yaml.safe_load(text) if p.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise FunctionValidationError(
            [
                Problem(
                    "$",
                    f"not valid {'YAML' if p.suffix in ('.yaml', '.yml') else 'JSON'}: {exc}",
                    "fix the syntax",
                )
            ],
            str(p),
        ) from None
    if isinstance(data, dict) and isinstance(data.get("functions"), list):
        return list(data["functions"])
    return data if isinstance(data, list) else [data]


def load_function(
    source: dict[str, Any] | str | Path,
    dialect: str | None = None,
    *,
    variables: Iterable[str] = (),
) -> Function:
    """Load one function from a dict or a file, in any loadable dialect.

    Raises :class:`FunctionValidationError` listing every problem.
    """
    label = None
    if isinstance(source, str | Path):
        label = str(source)
        docs = read_documents(source)
        if len(docs) != 1:
            raise FunctionValidationError(
                [
                    Problem(
                        "$",
                        f"the file holds {len(docs)} functions",
                        "use load_functions() for several",
                    )
                ],
                label,
            )
        source = docs[0]
    report = validate(source, dialect, variables=variables, source=label)
    if report.function is None:
        raise FunctionValidationError(report.problems, label)
    return report.function


def load_functions(path: str | Path, *, variables: Iterable[str] = ()) -> list[Function]:
    """Every function in a file (a single document or a list)."""
    out = []
    problems: list[Problem] = []
    for i, doc in enumerate(read_documents(path)):
        report = validate(doc, variables=variables)
        if report.function is None:
            problems += [
                Problem(f"$[{i}]{p.path[1:]}", p.message, p.fix, p.found, p.severity)
                for p in report.problems
            ]
        else:
            out.append(report.function)
    if any(p.severity == "error" for p in problems):
        raise FunctionValidationError(problems, str(path))
    return out


def dump(
    function: Function, dialect: str, *, context: CallContext | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Write a function in a dialect; also returns what that dialect could not carry."""
    if dialect in LOADABLE:
        try:
            doc, lost = LOADABLE[dialect].from_function(function)
        except TypeError as exc:
            raise ValueError(f"the {dialect} dialect cannot express this function: {exc}") from None
        return doc, lost
    if dialect in llm.NAMES:
        return llm.dump(function, dialect, context), []
    raise ValueError(f"unknown dialect {dialect!r}; use one of {', '.join(DIALECTS)}")


__all__ = [
    "DIALECTS",
    "LOADABLE",
    "Report",
    "detect",
    "dump",
    "load_function",
    "load_functions",
    "validate",
]
