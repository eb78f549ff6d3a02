"""What the ``voicefn`` process imports, checked in a fresh interpreter (no timing involved).

Each run goes through the console script's ``main`` with stdout a pipe, and reports
``sys.modules`` as the interpreter exits. This guards startup (issue 8) against an import
creeping back into ``--help`` or ``validate``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FUNCTION = ROOT / "examples" / "functions" / "check_order_status.json"  # Bolna

_WRAPPER = """
import atexit, json, os, sys

def report():
    state = {
        "modules": sorted(k for k, v in sys.modules.items() if v is not None),
        "plugins": os.environ.get("PYDANTIC_DISABLE_PLUGINS"),
    }
    sys.__stderr__.write("\\nSTATE " + json.dumps(state) + "\\n")

atexit.register(report)
sys.argv = ["voicefn", *json.loads(sys.argv[1])]
from voicefn.cli import main
main()
"""

#: Never needed to show help or validate a function file.
HEAVY = (
    "asyncio",
    "openai",
    "fastapi",
    "starlette",
    "sqlalchemy",
    "uvicorn",
    "alembic",
    "jsonschema",
    "voicefn.server.app",
    "voicefn.store",
    "voicefn.jobs.queue",
    "voicefn.sandbox",
    "voicefn.executor",
    "voicefn.runtime",
    "voicefn.actions",
    "voicefn.integrations",
)
#: The dialect modules that validating a Bolna file does not need.
OTHER_DIALECTS = tuple(
    f"voicefn.dialects.{name}"
    for name in (
        "call2me",
        "callkaro",
        "curl",
        "elevenlabs",
        "native",
        "openapi",
        "retell",
        "vapi",
    )
)


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, dict[str, object]]:
    # Without the variables that make the CLI colour a pipe (then rich is imported on purpose).
    unset = {"PYDANTIC_DISABLE_PLUGINS", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"}
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    environment.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER, json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
        timeout=120,
    )
    _, _, state = proc.stderr.rpartition("\nSTATE ")
    assert state, proc.stderr
    return proc.returncode, proc.stdout, json.loads(state)


def loaded(modules: object, prefixes: tuple[str, ...]) -> list[str]:
    assert isinstance(modules, list)
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)]


def test_help_imports_no_engine_no_pydantic_and_no_rich() -> None:
    code, output, state = run("--help")
    assert code == 0, output
    assert "validate" in output
    assert "serve" in output
    modules = state["modules"]
    assert loaded(modules, HEAVY) == []
    assert loaded(modules, ("voicefn.dialects", "voicefn.spec", "httpx", "rich")) == []


def test_validate_imports_only_what_validating_a_bolna_file_needs() -> None:
    code, output, state = run("validate", str(FUNCTION))
    assert code == 0, output
    assert output.startswith(f"ok {FUNCTION}: check_order_status (bolna)")
    modules = state["modules"]
    assert loaded(modules, HEAVY) == []
    assert loaded(modules, OTHER_DIALECTS) == []
    assert "voicefn.dialects.bolna" in modules  # the one it needs, so the check above means it
    # Only the validate module of the CLI, and no server module (the platform commands').
    assert loaded(modules, ("voicefn.cli._call", "voicefn.cli._mcp", "voicefn.server")) == []
    # httpx's own command line (click, pygments, rich) and, printing to a pipe, rich itself.
    assert loaded(modules, ("click", "pygments", "rich", "httpx._main")) == []
    assert state["plugins"] == "1"


def test_convert_and_from_curl_leave_the_engine_alone() -> None:
    code, output, state = run("convert", str(FUNCTION), "--to", "openai")
    assert code == 0, output
    assert json.loads(output)["function"]["name"] == "check_order_status"
    assert loaded(state["modules"], HEAVY) == []
    code, output, state = run("from-curl", "curl https://api.example.com/orders?id=1")
    assert code == 0, output
    assert (
        json.loads(output[output.index("{") :])["value"]["url"] == "https://api.example.com/orders"
    )
    assert loaded(state["modules"], (*HEAVY, "voicefn.dialects.vapi")) == []


def test_pydantic_plugins_a_user_setting_and_other_commands_are_left_alone() -> None:
    _, _, state = run("validate", str(FUNCTION), env={"PYDANTIC_DISABLE_PLUGINS": "logfire"})
    assert state["plugins"] == "logfire"
    code, output, state = run("invoke", "--help")
    assert code == 0, output
    assert state["plugins"] is None  # not a one-shot command
    assert "voicefn.cli._functions" in state["modules"]  # invoke reads files through it


_AS_VOICEFN = "import sys; sys.argv[0] = 'voicefn'; "


def _commands() -> list[str]:
    from voicefn.cli._entry import WHERE

    return sorted(WHERE)


def test_the_command_map_names_every_command_of_the_application() -> None:
    from voicefn.cli import app
    from voicefn.cli._entry import WHERE

    names = {info.name for info in app.registered_commands}
    names |= {info.name for info in app.registered_groups}
    assert names == set(WHERE)


@pytest.mark.parametrize("name", _commands())
def test_a_command_run_alone_has_the_help_of_the_whole_application(name: str) -> None:
    alone = subprocess.run(
        [
            sys.executable,
            "-c",
            _AS_VOICEFN + "from voicefn.cli import main; main()",
            name,
            "--help",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "100"},
        timeout=120,
    )
    whole = subprocess.run(
        [sys.executable, "-c", _AS_VOICEFN + "from voicefn.cli import app; app()", name, "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "100"},
        timeout=120,
    )
    assert alone.returncode == whole.returncode == 0, alone.stderr + whole.stderr
    assert f"Usage: voicefn {name} " in alone.stdout
    assert alone.stdout == whole.stdout


def test_asking_whether_a_dialect_exists_does_not_import_it() -> None:
    code = (
        "import sys\n"
        "from voicefn.dialects import LOADABLE\n"
        "assert 'vapi' in LOADABLE and 'nope' not in LOADABLE\n"
        "assert LOADABLE.get('nope') is None\n"
        "print('voicefn.dialects.vapi' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "False"
