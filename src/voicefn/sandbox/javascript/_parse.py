"""Syntax errors of a JavaScript function, found by the Deno binary the sandbox uses, without
running the code: ``deno lint`` parses it (Deno's own parser, with line and column), and V8
compiles it the way ``worker.js`` loads it (``new AsyncFunction(...)``, never called: ``parse.js``
with every permission off) for what only the engine rejects. No network, bounded time; the
answer is cached per code."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import tempfile

from ..problems import CodeProblem
from ._host import PACKAGE_DIR, find_deno
from .api import SandboxUnavailable

PARSE_JS = PACKAGE_DIR / "parse.js"
TIMEOUT_S = 20.0
#: the worker runs a script's code as the body of an async function: parse it the same way
WRAP = "async function __voicefn_body__(module, exports) {"
_ERROR = re.compile(
    r"SyntaxError: (?P<msg>[^\n]*).*?\bat file:///\S*?:(?P<line>\d+):(?P<col>\d+)", re.S
)


class Skipped(Exception):
    """The full check could not run; the message says why."""


@functools.lru_cache(maxsize=256)
def engine_syntax_problems(code: str, module: bool) -> tuple[CodeProblem, ...]:
    """The syntax errors Deno finds (empty: none); :class:`Skipped` when it cannot check."""
    try:
        deno = find_deno(None)
    except SandboxUnavailable as exc:
        raise Skipped(f"no Deno binary was found ({exc.what})") from None
    with tempfile.TemporaryDirectory(prefix="voicefn-parse-") as tmp:
        env = {
            "PATH": "/usr/bin:/bin",
            "NO_COLOR": "1",
            "DENO_NO_UPDATE_CHECK": "1",
            "DENO_DIR": tmp,
            "HOME": tmp,
        }
        text = code if module else WRAP + code + "\n}"
        lint_argv = [deno, "lint", "--no-config", "--json", "--ext=js", "-"]
        v8_argv = [deno, "run", "--no-config", "--no-remote", "--no-npm", "--no-lock"]
        v8_argv += ["--no-prompt", "--quiet", "--v8-flags=--max-old-space-size=128", str(PARSE_JS)]
        try:
            lint = _start(lint_argv, tmp, env)
            v8 = None if module else _start(v8_argv, tmp, env)
        except OSError as exc:
            raise Skipped(f"Deno could not start ({exc})") from None
        try:
            out, err = lint.communicate(text.encode(), timeout=TIMEOUT_S)
            v8_out = v8.communicate(code.encode(), timeout=TIMEOUT_S)[0] if v8 else b""
        except subprocess.TimeoutExpired:
            raise Skipped(f"Deno did not answer within {TIMEOUT_S:g} s") from None
        finally:
            for proc in (lint, v8):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()
    return _lint_problems(code, module, out, err) or _v8_problems(v8_out)


def _start(argv: list[str], cwd: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _lint_problems(code: str, module: bool, out: bytes, err: bytes) -> tuple[CodeProblem, ...]:
    try:
        report = json.loads(out or b"{}")
        messages = [str(e.get("message", "")) for e in report.get("errors", [])]
    except (ValueError, AttributeError) as exc:
        raise Skipped(f"deno lint gave no report ({exc})") from None
    lines = code.splitlines() or [""]
    found: dict[tuple[int, int], CodeProblem] = {}
    for m in _ERROR.finditer("\n".join([*messages, err.decode("utf-8", "replace")])):
        line, col = int(m["line"]), int(m["col"])
        if not module and line == 1:
            col = max(1, col - len(WRAP))
        line = min(line, len(lines))
        source = lines[line - 1].strip()
        source = source if len(source) <= 80 else source[:77] + "..."
        found.setdefault(
            (line, col),
            CodeProblem(
                line,
                f"syntax error: {m['msg'].strip()} (column {col})",
                f"correct the code at {source!r}" if source else "correct the syntax",
            ),
        )
    return tuple(found[k] for k in sorted(found))


def _v8_problems(out: bytes) -> tuple[CodeProblem, ...]:
    if not out:
        return ()
    try:
        answer = json.loads(out.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return ()
    if answer.get("ok") is not False or answer.get("name") != "SyntaxError":
        return ()
    return (
        CodeProblem(
            None,
            f"syntax error: {str(answer.get('message'))[:300]} (reported by V8, which gives no line)",
            "correct the code: V8 compiles it as the body of an async function",
        ),
    )


def skipped_reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, Skipped) else f"{type(exc).__name__}: {exc}"
