"""A whole function document checked: every rule, then the model, every problem at once."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from ..spec import NAME_PATTERN, PHASES, Function
from .actions import check_action
from .hints import value_fix
from .mapping import check_mapping
from .model_errors import document_path, from_pydantic
from .problems import Collector, Locate, Problem, identity
from .schema import check_parameters
from .store import check_store

_NAME_RE = re.compile(NAME_PATTERN)


#: The description ``voicefn from-curl`` writes until a person says when to call the function.
FROM_CURL_TODO = "TODO: say when the agent should call this"


def validate_document(
    data: Any,
    *,
    locate: Locate = identity,
    variables: Iterable[str] = (),
) -> tuple[Function | None, list[Problem]]:
    """Check a canonical document; return the Function (None if any error) and all problems.

    ``variables`` names the dynamic variables an agent declares, so ``{customer_name}`` is known.
    """
    out = Collector(locate)
    if not isinstance(data, dict):
        out.add((), "a function must be a JSON object", "wrap the definition in { ... }", data)
        return None, out.problems
    _check_semantics(data, out, set(variables))
    function: Function | None = None
    try:
        function = Function.model_validate(data)
    except ValidationError as exc:
        seen = {p.path for p in out.problems if p.severity == "error"}
        for err in exc.errors():
            loc = document_path(data, err["loc"])
            problem = from_pydantic(loc, err, out.locate)
            if problem.path not in seen:
                out.problems.append(problem)
                seen.add(problem.path)
    if any(p.severity == "error" for p in out.problems):
        function = None
    return function, out.problems


def _check_semantics(data: dict[str, Any], out: Collector, variables: set[str]) -> None:
    name = data.get("name")
    if isinstance(name, str) and not _NAME_RE.fullmatch(name):
        fixed = re.sub(r"[^a-zA-Z0-9_-]+", "_", name.strip()).strip("_")[:64] or "my_function"
        out.add(
            ("name",),
            "name must be 1-64 letters, digits, '_' or '-' (no spaces)",
            f"use {fixed!r}",
            name,
        )
    phase = data.get("phase", "in_call")
    if phase not in PHASES:
        out.add(("phase",), "unknown phase", f"use one of {', '.join(PHASES)}", phase)
    description = data.get("description")
    if isinstance(description, bool | int | float):
        out.add(
            ("description",),
            "description must be text",
            value_fix("string_type", {}, description),
            description,
        )
    elif phase == "in_call" and (not isinstance(description, str) or not description.strip()):
        out.add(
            ("description",),
            "in-call functions need a description: it is how the LLM knows when to call them",
            "say when to call it, with synonyms, e.g. 'Use when the caller asks where their order is'",
            description,
        )
    if isinstance(description, str) and FROM_CURL_TODO in description:
        out.add(
            ("description",),
            "the description is still the TODO that from-curl wrote",
            "say when the agent should call it, e.g. 'Use when the caller asks where their order is'",
            description,
            "warning",
        )
    params = data.get("parameters", {"type": "object", "properties": {}})
    mapped = data.get("mapping") if phase == "post_call" else None
    properties = check_parameters(params, out, set(mapped) if isinstance(mapped, dict) else set())
    _check_filler(data.get("filler"), out)
    action = data.get("action")
    if isinstance(action, dict):
        check_action(action, properties, variables, out)
    if "store" in data:
        check_store(data["store"], phase, action, out)
    if "mapping" in data:
        kind = action.get("type", "http") if isinstance(action, dict) else None
        check_mapping(data["mapping"], phase, params, variables, out, kind)


def _check_filler(filler: Any, out: Collector) -> None:
    if isinstance(filler, str) and not filler.strip():
        out.add(
            ("filler",),
            "filler is empty",
            "remove it, or write what the agent says while the function runs",
        )
    elif isinstance(filler, dict):
        for lang, line in filler.items():
            if not isinstance(line, str) or not line.strip():
                out.add(
                    ("filler", lang),
                    "filler line is empty",
                    "write the line in that language or remove the entry",
                    line,
                )
