"""Generate with AI (seeds 000/003): ask an LLM for a function, validate it, run it once in the
sandbox, feed any problem back, retry a bounded number of times.

The generated code is customer code like any other: it is checked statically (never executed on
the host) and runs only in the sandbox.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from .context import CallContext
from .executor import Executor
from .runtime.llm_client import LLMClient
from .sandbox.contract import CodeProblem, javascript_function, python_function
from .validation import validate_document

Language = Literal["python", "javascript"]

PYTHON_CONTRACT = """Write ONE Python function for a voice agent's custom-functions engine.
Rules (all required):
- `async def <snake_case_name>(ctx: RunContext, <params with type annotations>) -> dict:`
- parameter types only: str, int, float, bool, list, dict, Optional[...], Literal[...]; defaults are literals;
- a docstring: a one-line summary of when to call it, then an `Args:` section describing every parameter;
- make HTTP requests with `async with httpx.AsyncClient(timeout=10.0) as client:` (httpx is already imported);
- log with `logger.info(...)` (already available); no files, no subprocesses, no eval/exec;
- always return a JSON-serialisable dict with a "status" key ("success" or "error"), and catch
  httpx errors and return {"status": "error", "message": ...} instead of raising.
Reply with the code in one ```python block, then sample arguments for a test run in one ```json block."""

JAVASCRIPT_CONTRACT = """Write ONE JavaScript post-call function for a voice agent's custom-functions engine.
Rules (all required):
- `async function <camelOrSnakeName>(data) { ... }` where `data` holds the call: data.call (ids,
  numbers), data.variables (post-call variables), and any static values;
- `axios`, `moment` and `_` (lodash) are already available as globals; import nothing else;
- no file system, no process, no eval;
- return a JSON-serialisable object with a "status" key; catch request errors and return
  {status: "error", message} instead of throwing.
Reply with the code in one ```javascript block, then a sample `data` object for a test run in one ```json block."""

_BLOCK = re.compile(r"```([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.DOTALL)


@dataclass
class Attempt:
    code: str
    problems: list[str] = field(default_factory=list)
    result: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and self.error is None


@dataclass
class Generated:
    language: Language
    attempts: list[Attempt]
    function: dict[str, Any] | None
    arguments: dict[str, Any]

    @property
    def ok(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].ok

    @property
    def code(self) -> str:
        return self.attempts[-1].code if self.attempts else ""

    @property
    def result(self) -> Any:
        return self.attempts[-1].result if self.attempts else None


def extract(reply: str, language: Language) -> tuple[str | None, dict[str, Any] | None]:
    """The code block and the sample-arguments block of an LLM reply."""
    code: str | None = None
    sample: dict[str, Any] | None = None
    wanted = {"python": ("python", "py"), "javascript": ("javascript", "js")}[language]
    for lang, body in _BLOCK.findall(reply):
        lang = lang.lower()
        if lang == "json" and sample is None:
            try:
                value = json.loads(body)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                sample = value
        elif code is None and (lang in wanted or not lang):
            code = body.strip() + "\n"
    return code, sample


def _describe(problems: list[CodeProblem]) -> list[str]:
    return [
        f"line {p.line}: {p.message} (fix: {p.fix})" if p.line else f"{p.message} (fix: {p.fix})"
        for p in problems
        if p.severity == "error"
    ]


def function_document(code: str, language: Language) -> tuple[dict[str, Any] | None, list[str]]:
    """A validated canonical function document for generated code, or the problems."""
    if language == "python":
        doc, problems = python_function(code)
        errors = _describe(problems)
    else:
        doc, js_problems = javascript_function(code)
        errors = _describe(js_problems)
    if doc is None or errors:
        return None, errors or ["no function found in the code"]
    _, more = validate_document(doc)
    errors += [f"{p.path}: {p.message} (fix: {p.fix})" for p in more if p.severity == "error"]
    return (doc if not errors else None), errors


def _content(response: Any) -> str:
    """The text of a chat completion's first choice ("" when it has none)."""
    try:
        content = response["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""
    return content if isinstance(content, str) else ""


async def generate(
    description: str,
    *,
    language: Language,
    llm: LLMClient,
    model: str,
    executor: Executor,
    arguments: dict[str, Any] | None = None,
    max_attempts: int = 3,
    temperature: float | None = None,
) -> Generated:
    """Ask for code, check it, run it once in the sandbox; on a problem, say what went wrong
    and ask again, at most ``max_attempts`` times."""
    contract = PYTHON_CONTRACT if language == "python" else JAVASCRIPT_CONTRACT
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": contract},
        {"role": "user", "content": description},
    ]
    if arguments is not None:
        messages[-1]["content"] += f"\n\nTest it with these arguments: {json.dumps(arguments)}"
    attempts: list[Attempt] = []
    used_args: dict[str, Any] = dict(arguments or {})
    doc: dict[str, Any] | None = None
    extra: dict[str, Any] = {} if temperature is None else {"temperature": temperature}
    for _ in range(max_attempts):
        response = await llm.complete(model, messages, **extra)
        reply = _content(response)
        messages.append({"role": "assistant", "content": reply})
        code, sample = extract(reply, language)
        if arguments is None and sample is not None:
            used_args = sample
        attempt = Attempt(code or "")
        attempts.append(attempt)
        if code is None:
            attempt.problems = [f"the reply has no ```{language} code block"]
        else:
            doc, attempt.problems = function_document(code, language)
        if not attempt.problems and doc is not None:
            from .dialects import load_function

            function = load_function(doc, "voicefn")
            result = await executor.run(function, used_args, CallContext(agent_id="generate"))
            attempt.result = result.data
            if not result.ok:
                attempt.error = result.content
        if attempt.ok:
            break
        feedback = attempt.problems or [f"running it once in the sandbox failed: {attempt.error}"]
        messages.append(
            {
                "role": "user",
                "content": "That did not work:\n- "
                + "\n- ".join(feedback)
                + "\nFix it and reply with the whole corrected code and the sample arguments.",
            }
        )
    return Generated(language, attempts, doc, used_args)
