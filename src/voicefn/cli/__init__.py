"""The ``voicefn`` command line. Human output by default, ``--json`` for machines.

One module per concept: ``_app`` (the application, shared options, exit codes, JSON errors),
``_functions`` (validate, convert, from-curl), ``_invoke``, ``_call`` (call, tools) and
``_generate`` and ``_doctor`` (are the sandboxes usable from this install?). Each command imports the engine parts it uses when it runs.
"""

from __future__ import annotations

from ..server.cli import register as _register_platform
from . import _call, _doctor, _functions, _generate, _invoke, _jobs, _mcp, _openapi
from ._app import EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, EXIT_USAGE, app

__all__ = ["EXIT_INTERRUPTED", "EXIT_INVALID", "EXIT_OK", "EXIT_USAGE", "app", "main"]

_commands = (_call, _doctor, _functions, _generate, _invoke, _mcp, _openapi)

_register_platform(app)  # serve, keys, push, pull (voicefn.server.cli)
app.add_typer(_jobs.jobs_app, name="jobs")  # voicefn jobs list|show|redeliver


def main() -> None:
    app()
