"""How the ``voicefn`` process starts: it loads and builds only the command it runs.

Typer wants every command registered (decorators run when their module is imported) and then
builds a click command for each one, reading its signature and annotations. A line that names a
command needs one module and one built command; ``--help``, a misspelt name and shell completion
get them all. ``tests/test_cli_imports.py`` checks what ``--help`` and ``validate`` import.
"""

from __future__ import annotations

import copy
import importlib
import os
import sys
from collections.abc import Sequence

import typer.main
from typer._click import Command

from ._app import app

#: The module that registers each top-level command (``platform``: :mod:`voicefn.server.cli`'s
#: ``register``; ``jobs``: this package's ``_jobs``). A test keeps it equal to the application.
WHERE: dict[str, str] = {
    "validate": "_functions",
    "convert": "_functions",
    "from-curl": "_functions",
    "invoke": "_invoke",
    "tools": "_call",
    "call": "_call",
    "generate": "_generate",
    "doctor": "_doctor",
    "from-openapi": "_openapi",
    "mcp": "_mcp",
    "serve": "platform",
    "keys": "platform",
    "push": "platform",
    "pull": "platform",
    "jobs": "jobs",
}

_registered: set[str] = set()


def register(*parts: str) -> None:
    """Import the command modules ``parts`` (all of them if none are named), once each.

    The platform's commands and ``jobs`` are added after the modules, in this order, so
    ``--help`` lists the commands in one order however many were registered before.
    """
    every = ("_call", "_doctor", "_functions", "_generate", "_invoke", "_jobs", "_mcp", "_openapi")
    for part in parts or (*every, "platform", "jobs"):
        if part in _registered:
            continue
        _registered.add(part)
        if part == "platform":
            from ..server.cli import register as register_platform

            register_platform(app)  # serve, keys, push, pull
        elif part == "jobs":
            from ._jobs import jobs_app

            app.add_typer(jobs_app, name="jobs")  # voicefn jobs list|show|redeliver
        else:
            importlib.import_module(f"{__package__}.{part}")


#: Commands that read files, print and exit: :func:`lighten` trims their process.
ONE_SHOT_COMMANDS = frozenset({"validate", "convert", "from-curl"})


def lighten(argv: Sequence[str]) -> bool:
    """Skip two imports a one-shot command has no use for; True if ``argv`` runs one.

    One-shot: ``validate``, ``convert``, ``from-curl``, and ``--help``/``--version`` with no
    command. Everything else (``serve``, ``invoke``, ``call``, ``mcp``, ``jobs`` ...), and
    ``import voicefn.cli`` from other code, keeps the defaults. What is skipped:

    - pydantic's plugin discovery. Pydantic finds plugins (observability hooks such as logfire's)
      by reading the entry points of every installed distribution when the first model is built
      (about 20 ms of CPU for ``validate`` here; its loader still imports importlib.metadata). A
      one-shot command's validation has nothing for such a hook to report, so
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


def named(argv: Sequence[str]) -> str | None:
    """The command a line starts with; None for anything else and during shell completion."""
    if not argv or any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ):
        return None
    return argv[0]


def command_for(argv: Sequence[str]) -> Command:
    """The click command that runs ``argv``, with only the command ``argv`` names built in.

    Typer builds a click command for every registered command, reading each one's signature and
    annotations (about 45 ms for all of them); a line that starts with a command name needs only
    that one. Anything else (``--help``, root options first, no command, a misspelt one, shell
    completion) gets the whole application, so listings and suggestions stay complete.
    ``CliRunner`` in tests builds the whole application as before.
    """
    name = named(argv)
    commands = [
        info
        for info in app.registered_commands
        if info.callback is not None
        and (info.name or typer.main.get_command_name(info.callback.__name__)) == name
    ]
    groups = [info for info in app.registered_groups if info.name == name]
    if not (commands or groups):
        return typer.main.get_command(app)
    one = copy.copy(app)  # the original keeps every command
    one.registered_commands, one.registered_groups = commands, groups
    return typer.main.get_command(one)


def main() -> None:
    """The ``voicefn`` console script (and ``python -m voicefn``)."""
    argv = sys.argv[1:]
    lighten(argv)
    part = WHERE.get(named(argv) or "")
    if part is None:
        register()
    else:
        register(part)
    command_for(argv)()
