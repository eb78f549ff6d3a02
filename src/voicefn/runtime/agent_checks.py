"""Checks of an agent's own settings (``llm:``, the prompt's variables, the post-call mappings),
and the small helpers its problems share (what a value is, whether to show it)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..templates import VARIABLE_RE
from ..validation import Problem, check_url, did_you_mean, json_path, value_fix
from .agent_model import LLM_KEYS, LLMSettings
from .postcall_spec import mapping_problems

if TYPE_CHECKING:
    from .agent_validate import AgentReport

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_mappings(
    data: dict[str, Any],
    report: AgentReport,
    stored: set[str],
    given: Iterable[str] | Mapping[str, Any],
) -> None:
    """Post-call functions' ``variables.*`` and ``post_call.*`` sources against the agent's
    declarations; problems go with the function's own (same paths)."""
    for entry in report.functions:
        for found in entry.reports:
            function = found.function
            if function is None:
                continue
            more = mapping_problems(function, data, stored=stored, given=given)
            if entry.source.startswith("$"):  # embedded: paths start at the agent's root
                more = [
                    Problem(f"{entry.source}{p.path[1:]}", p.message, p.fix, p.found, p.severity)
                    for p in more
                ]
            found.problems += more
            if any(p.severity == "error" for p in more):
                found.function = None


def check_llm(llm: Any, problems: list[Problem]) -> None:
    if llm is None:
        return
    if not isinstance(llm, dict):
        problems.append(
            Problem(
                "$.llm",
                f"llm must be an object of settings, not {kind_of(llm)}",
                "write e.g. llm: {model: gpt-4o-mini, temperature: 0.3}",
                shown(llm),
            )
        )
        return
    for key in llm:
        if key not in LLM_KEYS:
            problem = unknown_key(("llm", str(key)), LLM_KEYS, "LLM setting")
            if key in ("api_key", "key", "token"):
                problem = Problem(
                    problem.path,
                    "keys do not belong in agent files",
                    "set api_key_env to the name of the environment variable that holds it "
                    "(default OPENAI_API_KEY)",
                )
            problems.append(problem)
    if llm.get("base_url") is not None:
        problems += check_url(llm["base_url"], ("llm", "base_url"), "llm.base_url")
    env = llm.get("api_key_env")
    if isinstance(env, str) and not _ENV_NAME.fullmatch(env):
        problems.append(
            Problem(
                "$.llm.api_key_env",
                "api_key_env is the *name* of an environment variable, and this is not one",
                "write the variable's name, e.g. OPENAI_API_KEY, and export the key in it",
                None,  # it may be the key itself: never echo it
            )
        )
    try:
        LLMSettings.model_validate({k: v for k, v in llm.items() if k in LLM_KEYS})
    except ValidationError as exc:
        for err in exc.errors():
            loc = ("llm", *(p for p in err["loc"] if isinstance(p, str | int)))
            if loc == ("llm", "api_key_env"):
                continue
            found = err.get("input")
            problems.append(
                Problem(
                    json_path(loc),
                    err["msg"].rstrip("."),
                    value_fix(err["type"], err.get("ctx") or {}, found),
                    shown(found),
                )
            )


def check_text_variables(key: str, text: str, known: set[str]) -> list[Problem]:
    out: list[Problem] = []
    for m in VARIABLE_RE.finditer(text):
        name = m.group("name")
        if name in known:
            continue
        hint = did_you_mean(name, known)
        fix = (
            f"did you mean {{{hint}}}? Variable names must match exactly"
            if hint
            else f"declare it under variables (with a default), or pass it per call (--var {name}=...)"
        )
        out.append(
            Problem(
                f"$.{key}",
                f"{{{name}}} is not a system variable or one of the agent's variables; "
                "it is said as written unless the call or a pre-call function sets it",
                fix,
                m.group(0),
                "warning",
            )
        )
    return out


def unknown_key(path: tuple[str, ...], known: Iterable[str], what: str) -> Problem:
    key = path[-1]
    hint = did_you_mean(key, known)
    fix = f"did you mean {hint!r}?" if hint else f"use one of {', '.join(known)}"
    return Problem(json_path(path), f"unknown {what} key {key!r}", fix)


def kind_of(value: Any) -> str:
    return {
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "true/false",
        list: "a list",
        dict: "an object",
        type(None): "empty",
    }.get(type(value), type(value).__name__)


def shown(value: Any) -> Any:
    if isinstance(value, dict | list) and len(repr(value)) > 200:
        return None
    return value
