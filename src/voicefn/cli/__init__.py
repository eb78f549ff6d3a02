"""The ``voicefn`` command line. Human output by default, ``--json`` for machines.

One module per concept: ``_app`` (the application, shared options, exit codes, JSON errors),
``_entry`` (the process: it loads and builds only the command it runs), ``_functions``
(validate, convert, from-curl), ``_invoke``, ``_call`` (call, tools), ``_generate``, ``_doctor``
(are the sandboxes usable from this install?), ``_openapi``, ``_mcp`` and ``_jobs``; ``serve``,
``keys``, ``push`` and ``pull`` come from :mod:`voicefn.server.cli`. Each command imports the
engine parts it uses only when it runs.

``app`` is the whole application: asking for it registers every command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._app import EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, EXIT_USAGE
from ._entry import main

if TYPE_CHECKING:
    from ._app import app

__all__ = ["EXIT_INTERRUPTED", "EXIT_INVALID", "EXIT_OK", "EXIT_USAGE", "app", "main"]


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from ._app import app
    from ._entry import register

    register()
    globals()["app"] = app
    return app
