"""``python -m voicefn.server serve|keys|push|pull``: the platform's commands on their own (the
same ones ``voicefn`` has)."""

from __future__ import annotations

import typer

from .cli import register

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
register(app)

if __name__ == "__main__":
    app()
