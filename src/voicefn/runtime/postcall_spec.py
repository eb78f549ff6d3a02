"""What an agent declares for after the call: its post-call variables and the built-in extras.

An agent file::

    post_call_variables:
      - {name: customer_email, type: string, description: The caller's email address}
      - {name: satisfaction, type: integer, description: "How happy the caller sounded, 1-5"}
      - {name: reason, type: enum, values: [billing, shipping, other], required: true}
      - {name: products, type: list, items: string, description: Products the caller named}
    post_call: {summary: true, outcome: true}

After hang-up one LLM request extracts them from the transcript (:mod:`voicefn.runtime.postcall`);
post-call functions read them as ``post_call.<name>`` in their ``mapping``. This module is light
(pydantic only): agent validation imports it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..spec import Function
from ..validation import Problem, SourceType, check_mapping_sources, did_you_mean, json_path

VariableType = Literal["string", "integer", "number", "boolean", "enum", "list"]
ItemType = Literal["string", "integer", "number", "boolean"]
VARIABLE_TYPES: tuple[str, ...] = ("string", "integer", "number", "boolean", "enum", "list")
ITEM_TYPES: tuple[str, ...] = ("string", "integer", "number", "boolean")
#: What the built-in outcome can be (``transferred`` and ``no-answer`` follow from the call).
OUTCOMES: tuple[str, ...] = ("success", "failed", "transferred", "no-answer")
#: The extras' names under ``post_call.*``.
EXTRAS: tuple[str, ...] = ("summary", "outcome", "outcome_reason")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_TYPE_ALIASES = {
    "str": "string",
    "text": "string",
    "int": "integer",
    "float": "number",
    "decimal": "number",
    "bool": "boolean",
    "array": "list",
    "choice": "enum",
    "select": "enum",
}


class PostCallVariable(BaseModel):
    """One value to extract from the transcript."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: VariableType = "string"
    #: What the LLM reads to find the value: say what it is and how to write it.
    description: str = ""
    #: A required value the transcript does not give makes the extraction incomplete (it is
    #: recorded as missing, never invented).
    required: bool = False
    #: ``enum``: the allowed values.
    values: list[str] = Field(default_factory=list)
    #: ``list``: the type of its items.
    items: ItemType = "string"

    def json_schema(self) -> dict[str, Any]:
        """The property in the extraction's JSON Schema: nullable, so "not said" is null."""
        schema: dict[str, Any]
        if self.type == "enum":
            schema = {"type": ["string", "null"], "enum": [*self.values, None]}
        elif self.type == "list":
            schema = {"type": ["array", "null"], "items": {"type": self.items}}
        else:
            schema = {"type": [self.type, "null"]}
        if self.description:
            schema["description"] = self.description
        return schema

    def source_type(self) -> SourceType:
        if self.type == "enum":
            return SourceType("string", tuple(self.values))
        if self.type == "list":
            return SourceType("array", items=self.items)
        return SourceType(self.type)


class PostCallSettings(BaseModel):
    """The built-in extras, off by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``post_call.summary``: two or three sentences on what happened.
    summary: bool = False
    #: ``post_call.outcome`` (success, failed, transferred, no-answer) and
    #: ``post_call.outcome_reason``.
    outcome: bool = False


def extras_of(settings: PostCallSettings) -> tuple[str, ...]:
    """The extras switched on, by their ``post_call.*`` names."""
    out: list[str] = []
    if settings.summary:
        out.append("summary")
    if settings.outcome:
        out += ["outcome", "outcome_reason"]
    return tuple(out)


def post_call_sources(
    variables: Iterable[PostCallVariable], settings: PostCallSettings
) -> dict[str, SourceType]:
    """What ``post_call.*`` can read, with types."""
    out = {v.name: v.source_type() for v in variables}
    if settings.summary:
        out["summary"] = SourceType("string")
    if settings.outcome:
        out["outcome"] = SourceType("string", OUTCOMES)
        out["outcome_reason"] = SourceType("string")
    return out


def variable_sources(
    declared: Mapping[str, Any], stored: Iterable[str], given: Iterable[str] = ()
) -> dict[str, SourceType]:
    """What ``variables.*`` can read: the agent's variables (typed by their default), names
    functions store (type unknown), names every call passes (``--var``: text)."""
    out: dict[str, SourceType] = {name: SourceType("string") for name in given}
    for name in stored:
        out[name] = SourceType()
    for name, default in declared.items():
        if name in out and out[name].type is None:
            continue  # a function may store another type over the default
        out[name] = _type_of(default)
    return out


def _type_of(value: Any) -> SourceType:
    if isinstance(value, bool):
        return SourceType("boolean")
    if isinstance(value, int):
        return SourceType("integer")
    if isinstance(value, float):
        return SourceType("number")
    if isinstance(value, str):
        return SourceType("string")
    if isinstance(value, list):
        return SourceType("array")
    if isinstance(value, dict):
        return SourceType("object")
    return SourceType()


def check_post_call(variables: Any, settings: Any) -> list[Problem]:
    """Every problem of an agent's ``post_call_variables`` and ``post_call`` (paths from the
    agent file's root); what pydantic would say less clearly is said here first."""
    problems: list[Problem] = []
    extras: set[str] = set()
    if isinstance(settings, dict):
        for key in settings:
            if key not in PostCallSettings.model_fields:
                hint = did_you_mean(str(key), PostCallSettings.model_fields)
                problems.append(
                    Problem(
                        json_path(("post_call", str(key))),
                        f"unknown post_call key {key!r}",
                        f"did you mean {hint!r}?" if hint else "use summary: true, outcome: true",
                    )
                )
        if settings.get("summary") is True:
            extras.add("summary")
        if settings.get("outcome") is True:
            extras |= {"outcome", "outcome_reason"}
    elif settings is not None:
        problems.append(
            Problem(
                "$.post_call",
                "post_call switches the built-in extras on: an object",
                "write post_call: {summary: true, outcome: true}",
                settings if isinstance(settings, str | int | float | bool) else None,
            )
        )
    if variables is None:
        return problems
    if not isinstance(variables, list):
        problems.append(
            Problem(
                "$.post_call_variables",
                "post_call_variables is a list of {name, type, description}",
                "write one '- {name: customer_email, type: string, description: ...}' per value",
                variables if isinstance(variables, str | int | float | bool) else None,
            )
        )
        return problems
    seen: dict[str, int] = {}
    for i, item in enumerate(variables):
        problems += _check_variable(i, item, seen, extras)
    return problems


def _check_variable(i: int, item: Any, seen: dict[str, int], extras: set[str]) -> list[Problem]:
    where = ("post_call_variables", i)
    out: list[Problem] = []
    if not isinstance(item, dict):
        return [
            Problem(
                json_path(where),
                "a post-call variable is an object: name, type, description, required",
                "write e.g. {name: customer_email, type: string, description: The caller's email}",
                item if isinstance(item, str | int | float | bool) else None,
            )
        ]
    for key in item:
        if key in PostCallVariable.model_fields:
            continue
        fix = (
            "write the allowed values under values: (and type: enum)"
            if key in ("enum", "options", "choices")
            else f"did you mean {hint!r}?"
            if (hint := did_you_mean(str(key), PostCallVariable.model_fields))
            else f"use {', '.join(PostCallVariable.model_fields)}"
        )
        out.append(Problem(json_path((*where, str(key))), f"unknown key {key!r}", fix))
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        fixed = re.sub(r"[^A-Za-z0-9_]+", "_", str(name or "")).strip("_") or "value"
        out.append(
            Problem(
                json_path((*where, "name")),
                "a post-call variable needs a name: letters, digits and '_', not starting "
                "with a digit (it is read as post_call.<name>)",
                f"use {fixed[:64]!r}" if name else "add name: (e.g. customer_email)",
                name if isinstance(name, str | int | float | bool) else None,
            )
        )
    elif name in seen:
        out.append(
            Problem(
                json_path((*where, "name")),
                f"{name!r} is declared twice (also at post_call_variables[{seen[name]}])",
                "rename one, or remove it",
                name,
            )
        )
    elif name in extras:
        out.append(
            Problem(
                json_path((*where, "name")),
                f"post_call.{name} is the built-in {name.split('_')[0]} (switched on under "
                "post_call)",
                f"rename it, e.g. 'my_{name}', or switch the built-in off",
                name,
            )
        )
    if isinstance(name, str):
        seen.setdefault(name, i)
    kind = item.get("type", "string")
    if kind not in VARIABLE_TYPES:
        hint = _TYPE_ALIASES.get(str(kind).lower()) or did_you_mean(str(kind), VARIABLE_TYPES)
        out.append(
            Problem(
                json_path((*where, "type")),
                f"unsupported type {kind!r}",
                f"use {hint!r}" if hint else f"use one of {', '.join(VARIABLE_TYPES)}",
                kind if isinstance(kind, str | int | float | bool) else None,
            )
        )
    values = item.get("values")
    if kind == "enum":
        if not isinstance(values, list) or not values:
            out.append(
                Problem(
                    json_path((*where, "values")),
                    "an enum needs its allowed values",
                    "add values: [first, second, ...] (text)",
                )
            )
        else:
            for k, v in enumerate(values):
                if not isinstance(v, str) or not v.strip():
                    out.append(
                        Problem(
                            json_path((*where, "values", k)),
                            "enum values are text",
                            f'quote it ("{v}")' if v is not None else "remove the empty value",
                            v if isinstance(v, str | int | float | bool) else None,
                        )
                    )
            dups = sorted({v for v in values if isinstance(v, str) and values.count(v) > 1})
            if dups:
                out.append(
                    Problem(
                        json_path((*where, "values")),
                        f"{', '.join(map(repr, dups))} listed twice",
                        "list each value once",
                    )
                )
    elif values is not None and kind in VARIABLE_TYPES:
        out.append(
            Problem(
                json_path((*where, "values")),
                f"values only apply to type enum, not {kind}",
                "set type: enum, or remove values",
            )
        )
    if "items" in item and kind in VARIABLE_TYPES and kind != "list":
        out.append(
            Problem(
                json_path((*where, "items")),
                f"items only apply to type list, not {kind}",
                "set type: list, or remove items",
            )
        )
    elif "items" in item and item["items"] not in ITEM_TYPES:
        found = item["items"]
        hint = _TYPE_ALIASES.get(str(found).lower()) or did_you_mean(str(found), ITEM_TYPES)
        out.append(
            Problem(
                json_path((*where, "items")),
                f"unsupported item type {found!r}",
                f"use {hint!r}" if hint in ITEM_TYPES else f"use one of {', '.join(ITEM_TYPES)}",
                found if isinstance(found, str | int | float | bool) else None,
            )
        )
    description = item.get("description")
    if description is None or (isinstance(description, str) and not description.strip()):
        out.append(
            Problem(
                json_path((*where, "description")),
                "no description: the LLM finds the value by what the description says",
                "say what the value is and how to write it, e.g. 'The caller's email address'",
                severity="warning",
            )
        )
    return out


def declared_post_call(
    document: Mapping[str, Any],
) -> tuple[list[PostCallVariable], PostCallSettings]:
    """An agent document's post-call variables and extras, the valid ones (the others are
    reported by :func:`check_post_call`)."""
    raw = document.get("post_call_variables")
    variables: list[PostCallVariable] = []
    for item in raw if isinstance(raw, list) else ():
        try:
            variables.append(PostCallVariable.model_validate(item))
        except ValidationError:
            continue
    try:
        settings = PostCallSettings.model_validate(document.get("post_call") or {})
    except ValidationError:
        settings = PostCallSettings()
    return variables, settings


def stored_names(functions: Iterable[Function | Mapping[str, Any]]) -> set[str]:
    """The variables functions store (``store:``)."""
    out: set[str] = set()
    for f in functions:
        store = f.store if isinstance(f, Function) else f.get("store")
        if isinstance(store, Mapping):
            out.update(str(k) for k in store)
    return out


def mapping_problems(
    function: Function,
    agent: Mapping[str, Any],
    *,
    stored: Iterable[str] = (),
    given: Iterable[str] = (),
) -> list[Problem]:
    """A post-call function's ``variables.*`` and ``post_call.*`` sources against an agent
    document (its ``variables``, ``post_call_variables`` and ``post_call``), the names the
    agent's functions store and those every call passes. Paths: ``$.mapping.<parameter>``."""
    if not function.mapping or function.phase != "post_call":
        return []
    variables, settings = declared_post_call(agent)
    declared = agent.get("variables")
    return check_mapping_sources(
        function,
        variables=variable_sources(
            declared if isinstance(declared, Mapping) else {}, stored, given
        ),
        post_call=post_call_sources(variables, settings),
    )
