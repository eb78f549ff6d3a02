"""``voicefn call --llm-script FILE``: the LLM's answers from a file, served by the shipped
:class:`voicefn.testing.ScriptedLLM` (a real local OpenAI-compatible server), so a call runs with
no hosted LLM. One item answers one LLM request, in order::

    - Hello! How can I help?                           # text
    - tool_calls:                                      # a tool call (arguments: an object)
        - {name: check_order_status, arguments: {order_id: ORD-78234}}
    - text: Let me check.                              # words and tool calls in one answer
      tool_calls: [{name: end_call}]
    - error: {status: 503, message: overloaded}        # an HTTP error from the LLM
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..validation import FunctionValidationError, Problem, did_you_mean, json_path

if TYPE_CHECKING:
    from ..testing import ScriptItem

_ITEM_KEYS = ("text", "tool_calls", "error")
_CALL_KEYS = ("name", "arguments", "id")


def read_llm_script(path: Path) -> list[ScriptItem]:
    """The scripted replies in ``path``; raises FunctionValidationError listing every problem
    (OSError when the file cannot be read)."""
    from ..dialects import read_file
    from ..testing import Reply, ToolCallSpec, error_reply, text

    data = read_file(path)
    problems: list[Problem] = []
    if not isinstance(data, list):
        raise FunctionValidationError(
            [
                Problem(
                    "$",
                    "an LLM script is a list: one item per LLM answer",
                    "write one '- answer' per line (text, or tool_calls:, or error:)",
                )
            ],
            str(path),
        )
    items: list[ScriptItem] = []
    for i, item in enumerate(data):
        where: tuple[str | int, ...] = (i,)
        if isinstance(item, str):
            items.append(text(item))
            continue
        if not isinstance(item, dict):
            problems.append(
                Problem(
                    json_path(where),
                    "an answer is text or an object",
                    "write the words, or {text: ..., tool_calls: [...]} or {error: {status, message}}",
                    item,
                )
            )
            continue
        for key in item:
            if key not in _ITEM_KEYS:
                hint = did_you_mean(str(key), _ITEM_KEYS)
                problems.append(
                    Problem(
                        json_path((*where, str(key))),
                        f"unknown key {key!r}",
                        f"did you mean {hint!r}?" if hint else f"use {', '.join(_ITEM_KEYS)}",
                    )
                )
        if "error" in item:
            e = item["error"]
            status = e.get("status", 500) if isinstance(e, dict) else None
            if not isinstance(status, int) or not 400 <= status <= 599:
                problems.append(
                    Problem(
                        json_path((*where, "error")),
                        "error needs an HTTP status from 400 to 599",
                        "write error: {status: 503, message: overloaded}",
                        e,
                    )
                )
                continue
            items.append(error_reply(status, str(e.get("message", "scripted error"))))
            continue
        calls: list[ToolCallSpec] = []
        raw_calls = item.get("tool_calls") or []
        if not isinstance(raw_calls, list):
            raw_calls = [raw_calls]
        for k, call in enumerate(raw_calls):
            cpath = (*where, "tool_calls", k)
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                problems.append(
                    Problem(
                        json_path(cpath),
                        "a tool call needs the function's name",
                        "write {name: check_order_status, arguments: {order_id: ORD-1}}",
                        call,
                    )
                )
                continue
            args: Any = call.get("arguments", {})
            if not isinstance(args, dict | str):
                problems.append(
                    Problem(
                        json_path((*cpath, "arguments")),
                        "arguments are an object (or a raw JSON string)",
                        "write arguments: {name: value}",
                        args,
                    )
                )
                continue
            calls.append(ToolCallSpec(call["name"], args, call.get("id")))
        words = item.get("text")
        if words is not None and not isinstance(words, str):
            problems.append(
                Problem(json_path((*where, "text")), "text must be a string", "quote it", words)
            )
            continue
        if words is None and not calls:
            problems.append(
                Problem(
                    json_path(where),
                    "an answer needs text or tool_calls",
                    "add text: ... or tool_calls: [...]",
                )
            )
            continue
        items.append(Reply(text=words, tool_calls=calls))
    if problems:
        raise FunctionValidationError(problems, str(path))
    return items
