"""The ``voicefn`` command line. Human output by default, ``--json`` for machines.

One module per concept: ``_app`` (the application, shared options, exit codes, JSON errors),
``_functions`` (validate, convert, from-curl), ``_invoke``, ``_call`` (call, tools) and
``_generate`` and ``_doctor`` (are the sandboxes usable from this install?). Every command module
is imported here (``--help`` lists them all) but each imports the engine parts it uses only when
it runs: ``tests/test_cli_imports.py`` keeps ``--help`` and ``validate`` free of asyncio, the LLM
client, the server and the sandboxes.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Sequence

import typer.main
from typer._click import Command

from ..server.cli import register as _register_platform
from . import _call, _doctor, _functions, _generate, _invoke, _jobs, _mcp, _openapi
from ._app import EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, EXIT_USAGE, app

__all__ = ["EXIT_INTERRUPTED", "EXIT_INVALID", "EXIT_OK", "EXIT_USAGE", "app", "main"]

_commands = (_call, _doctor, _functions, _generate, _invoke, _mcp, _openapi)

_register_platform(app)  # serve, keys, push, pull (voicefn.server.cli)
app.add_typer(_jobs.jobs_app, name="jobs")  # voicefn jobs list|show|redeliver

#: Commands that read files, print and exit: :func:`lighten` trims their process.
ONE_SHOT_COMMANDS = frozenset({"validate", "convert", "from-curl"})


def lighten(argv: Sequence[str]) -> bool:
    """Skip two imports a one-shot command has no use for; True if ``argv`` runs one.

    One-shot: ``validate``, ``convert``, ``from-curl``, and ``--help``/``--version`` with no
    command. Everything else (``serve``, ``invoke``, ``call``, ``mcp``, ``jobs`` ...), and
    ``import voicefn.cli`` from other code, keeps the defaults. What is skipped:

    - pydantic's plugin discovery. Pydantic finds plugins (observability hooks such as logfire's)
      by reading the entry points of every installed distribution when the first model is built.
      A one-shot command's validation has nothing for such a hook to report, so
      ``PYDANTIC_DISABLE_PLUGINS=1`` is set, unless the user set the variable (even to ""). Child
      processes inherit it; these commands start none that validate with plugins.
    - httpx's own command line. ``import httpx`` imports ``httpx._main`` (click, pygments and
      rich's progress and syntax modules: about a tenth of ``voicefn validate``) only to offer
      ``httpx.main``; voicefn needs httpx for its URL parser and never calls that. Marking the
      module absent makes httpx fall back to its stub ``main``, in this process only.
    """
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command is not None and command not in ONE_SHOT_COMMANDS:
        return False
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "1")
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    return True


def command_for(argv: Sequence[str]) -> Command:
    """The click command that runs ``argv``, with only the command ``argv`` names built in.

    Typer builds a click command for every registered command, reading each one's signature and
    annotations (about 45 ms for all of them); a line that starts with a command name needs only
    that one. Anything else (``--help``, root options first, no command, a misspelt one, shell
    completion) gets the whole application, so listings and suggestions stay complete.
    ``CliRunner`` in tests builds the whole application as before.
    """
    name = argv[0] if argv else ""
    completing = any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ)
    commands = [
        info
        for info in app.registered_commands
        if info.callback is not None
        and (info.name or typer.main.get_command_name(info.callback.__name__)) == name
    ]
    groups = [info for info in app.registered_groups if info.name == name]
    if completing or not (commands or groups):
        return typer.main.get_command(app)
    one = copy.copy(app)  # the original keeps every command
    one.registered_commands, one.registered_groups = commands, groups
    return typer.main.get_command(one)


def main() -> None:
    """The ``voicefn`` console script (and ``python -m voicefn``)."""
    argv = sys.argv[1:]
    lighten(argv)
    command_for(argv)()
