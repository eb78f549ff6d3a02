"""Dialects: outside formats for a function, converted to and from the canonical model.

Loadable (they carry an action): ``voicefn``, ``bolna``, ``call2me``, ``callkaro``, ``vapi``,
``retell``, ``elevenlabs``.
Dump-only (what an LLM sees): ``openai``, ``openai-responses``, ``anthropic``, ``gemini``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from ..context import CallContext
from ..spec import Function
from ..validation import FunctionValidationError, Problem, did_you_mean, validate_document
from . import code, llm

#: The module of each loadable dialect. A module is imported the first time its dialect is
#: asked for (validating a Bolna file never imports the Vapi converter); detection uses the
#: predicates below, which need no module.
_MODULES: dict[str, str] = {
    "voicefn": "native",
    "bolna": "bolna",
    "call2me": "call2me",
    "callkaro": "callkaro",
    "vapi": "vapi",
    "retell": "retell",
    "elevenlabs": "elevenlabs",
}

_RETELL_ONLY = frozenset(
    {
        "speak_after_execution",
        "execution_message_description",
        "execution_message_type",
        "args_at_root",
        "response_variables",
        "query_params",
    }
)

#: Does a document look written in this dialect? Each module's ``detect`` is its entry here;
#: :func:`detect` decides between look-alikes by the order it asks them in.
SIGNS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "voicefn": lambda d: isinstance(d.get("action"), dict),
    "bolna": lambda d: "key" in d or isinstance(d.get("value"), dict),
    "call2me": lambda d: "speak_during_execution" in d or {"url", "parameters"} <= d.keys(),
    "callkaro": lambda d: "api_url" in d,
    "vapi": lambda d: (
        d.get("type") == "function" and bool({"server", "messages", "async"} & d.keys())
    ),
    "retell": lambda d: (
        d.get("type") == "custom"
        or bool(_RETELL_ONLY & d.keys())
        or isinstance(d.get("speak_during_execution"), bool)
    ),
    "elevenlabs": lambda d: "api_schema" in d or d.get("type") == "webhook",
}


class _Loadable(Mapping[str, ModuleType]):
    """Dialect name -> its module, imported on first access; listing names imports nothing."""

    def __getitem__(self, name: str) -> ModuleType:
        module = _MODULES[name]  # KeyError for a name that is not a loadable dialect
        return importlib.import_module(f"{__name__}.{module}")

    def __contains__(self, name: object) -> bool:
        return name in _MODULES  # Mapping's default would import the module to find out

    def __iter__(self) -> Iterator[str]:
        return iter(_MODULES)

    def __len__(self) -> int:
        return len(_MODULES)

    def __repr__(self) -> str:
        return f"LOADABLE({', '.join(_MODULES)})"


LOADABLE: Mapping[str, ModuleType] = _Loadable()
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
    for platform in ("vapi", "retell", "elevenlabs"):  # before the look-alikes below
        if SIGNS[platform](data):
            return platform
    if data.get("type") == "function":
        return "openai" if "function" in data else "openai-responses"
    if "input_schema" in data:
        return "anthropic"
    for name in ("voicefn", "bolna", "callkaro", "call2me"):
        if SIGNS[name](data):
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
            fix = 'use a Bolna ("key": "custom_task"), Call2Me (url + speak_during_execution), CallKaro (api_url), Vapi (type function + server), Retell (type custom), ElevenLabs (api_schema) or voicefn (action) document'
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


def read_file(path: str | Path) -> Any:
    """The parsed content of a JSON or YAML file (source code: its marker document).

    Raises :class:`FunctionValidationError` (labelled with the path) for an empty file or a
    syntax error, saying where it is; :class:`OSError` when the file cannot be read.
    """
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    suffix = p.suffix.lower()
    if suffix in code.SUFFIXES:
        if not text.strip():
            raise FunctionValidationError([_empty(p)], str(p))
        return code.source_document(text, code.SUFFIXES[suffix])
    if not text.strip():
        raise FunctionValidationError([_empty(p)], str(p))
    if suffix in (".yaml", ".yml"):
        return _parse_yaml(text, p)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FunctionValidationError(
            [
                Problem(
                    "$",
                    f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                    _json_fix(text, exc),
                )
            ],
            str(p),
        ) from None


def _empty(p: Path) -> Problem:
    return Problem("$", "the file is empty", f"write the definition into {p.name}")


def _json_fix(text: str, exc: json.JSONDecodeError) -> str:
    line = text.splitlines()[exc.lineno - 1] if text.splitlines() else ""
    if exc.msg.startswith("Expecting property name") and "'" in line:
        return "JSON needs double quotes around keys and strings"
    if exc.msg.startswith("Expecting property name") or exc.msg == "Illegal trailing comma":
        return "remove the comma before the closing bracket (JSON allows no trailing comma)"
    shown = line.strip()
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return f"correct line {exc.lineno}: {shown!r}" if shown else "correct the syntax"


def _parse_yaml(text: str, p: Path) -> Any:
    import yaml  # only YAML files pay for it

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = str(getattr(exc, "problem", None) or exc).strip()
        if "'\\t'" in problem:  # yaml says: found character '\\t' ...
            message = f"a tab character{where}: YAML indents with spaces only"
            fix = "replace the tab with spaces"
        else:
            message = f"not valid YAML{where}: {problem}"
            fix = "correct the syntax there (quote a value that holds ': ' or starts with { [ * & ! | >)"
        raise FunctionValidationError([Problem("$", message, fix)], str(p)) from None


#: Keys only an agent file has: a document with one of them (and no function dialect) is an agent.
_AGENT_ONLY = frozenset(
    {"system_prompt", "welcome_message", "functions", "llm", "variables", "language", "webhook_url"}
)


def is_agent_document(data: Any) -> bool:
    """True for a parsed agent file (as opposed to one function, or a list of them)."""
    return isinstance(data, dict) and bool(_AGENT_ONLY & data.keys()) and detect(data) is None


def unreadable(path: Path, exc: OSError) -> Problem:
    """The problem for a file that cannot be read, naming the path it was looked for at."""
    resolved = path.expanduser().resolve()
    why = exc.strerror or type(exc).__name__
    fix = "check the path"
    if not path.is_absolute():
        fix += f" (relative paths start from {Path.cwd()})"
    if not resolved.exists():
        try:
            siblings = [p.name for p in resolved.parent.iterdir()]
        except OSError:
            siblings = []
        hint = did_you_mean(resolved.name, siblings)
        if hint:
            fix = f"did you mean {resolved.parent / hint}?"
    return Problem("$", f"cannot read file {resolved}: {why}", fix)


def read_documents(path: str | Path) -> list[Any]:
    """The function documents in a JSON or YAML file: one object, or a list of them (an agent
    file gives its ``functions`` list)."""
    data = read_file(path)
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
    "is_agent_document",
    "load_function",
    "load_functions",
    "read_documents",
    "read_file",
    "unreadable",
    "validate",
]
