"""The Typer application, its consoles, shared options and the JSON/exit-code conventions.

Exit codes (every command): 0 ok; 1 invalid input (a file, an argument value) or a failed
function or call; 2 usage (an unknown option, a missing argument, a bad option value);
130 interrupted. With ``--json`` everything a command says, errors included, is one JSON
document on stdout.

This module and the command modules import only what ``--help`` needs; each command imports the
engine parts it uses when it runs, so ``voicefn --help`` and ``validate`` start fast. Rich (about
30 ms to import) is loaded the first time :data:`out`/:data:`err` print what needs it (colour
on a terminal, or anything but a simple line) or :func:`escape` is called; ``--help`` is printed
by Typer without it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from ..context import SYSTEM_VARIABLES

if TYPE_CHECKING:
    from rich.console import Console

    from ..actions.code import SandboxMode
    from ..context import CallContext
    from ..validation import Problem

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: The same names as :data:`voicefn.DIALECTS` (a test keeps them equal); here so that ``--help``
#: does not import the dialects.
DIALECT_NAMES: tuple[str, ...] = (
    "voicefn",
    "bolna",
    "call2me",
    "callkaro",
    "vapi",
    "retell",
    "elevenlabs",
    "openai",
    "openai-responses",
    "anthropic",
    "gemini",
)
LLM_DIALECTS: tuple[str, ...] = ("openai", "openai-responses", "anthropic", "gemini")


class LazyConsole:
    """A rich Console (no highlighting, soft wrap) made the first time it is used."""

    def __init__(self, *, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        """The real Console, for code that takes one (the call simulator)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr, highlight=False, soft_wrap=True)
        return self._console

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """``Console.print``; a simple line to a file that is not a terminal skips rich (it
        would write the same characters: :mod:`._plain`)."""
        if len(objects) == 1 and isinstance(objects[0], str) and not kwargs:
            from ._plain import write_plain

            if write_plain(objects[0], sys.stderr if self._stderr else sys.stdout):
                return
        self.console.print(*objects, **kwargs)


out = LazyConsole()
err = LazyConsole(stderr=True)


def escape(text: str) -> str:
    """Rich's :func:`rich.markup.escape`; text without ``[`` or ``\\`` (which it returns
    unchanged) does not import rich."""
    if "[" not in text and "\\" not in text:
        return text
    from rich.markup import escape as rich_escape

    return rich_escape(text)


#: The order of ``voicefn --help``: the way a newcomer meets the commands.
COMMAND_ORDER = (
    "validate",
    "convert",
    "from-curl",
    "invoke",
    "tools",
    "call",
    "generate",
    "doctor",
)


class _Group(TyperGroup):
    """With ``--json`` anywhere on the line, usage errors are JSON on stdout too."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: rank.get(n, len(rank)))

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if "--json" not in argv or not standalone_mode:
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(argv, prog_name, complete_var, False, **extra)
        except typer.TyperException as exc:
            print_json(
                {
                    "ok": False,
                    "error": "usage",
                    "message": exc.format_message(),
                    "exit_code": EXIT_USAGE,
                }
            )
            sys.exit(EXIT_USAGE)
        except typer.Abort:
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else EXIT_OK)


app = typer.Typer(
    cls=_Group,
    help="voicefn: custom functions for voice AI agents: validate, convert, import and run them.\n\n"
    "Exit codes: 0 ok, 1 invalid input or a failed function/call, 2 usage, 130 interrupted.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        out.print(f"voicefn {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """voicefn: custom functions for voice AI agents: validate, convert, import and run them."""


# ------------------------------------------------------------------------------------- options

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout, errors included.")
]
VarOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--var",
        help="A context variable for this run, key=value (repeatable). System variables: "
        + ", ".join(SYSTEM_VARIABLES)
        + "; anything else is a dynamic variable.",
    ),
]
PrivateOpt = Annotated[
    bool,
    typer.Option(
        "--allow-private-network",
        envvar="VOICEFN_ALLOW_PRIVATE_NETWORK",
        help="Allow loopback/private addresses (local development).",
    ),
]
SandboxOpt = Annotated[
    str,
    typer.Option(
        "--sandbox",
        envvar="VOICEFN_SANDBOX",
        help="How customer code runs: isolated (default; refuses if the host cannot isolate) or "
        "unsafe-process (weaker, an explicit operator choice).",
    ),
]
AllowOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow",
        envvar="VOICEFN_ALLOW",
        help="Allow a host or CIDR despite the egress policy (repeatable; the variable takes "
        "several separated by spaces).",
    ),
]
HttpsOnlyOpt = Annotated[
    bool,
    typer.Option("--https-only", envvar="VOICEFN_HTTPS_ONLY", help="Refuse plain-http URLs."),
]


# ------------------------------------------------------------------------------------- helpers


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def fail(
    message: str,
    *,
    as_json: bool,
    code: int = EXIT_INVALID,
    problems: Sequence[Problem] = (),
    source: str | None = None,
    kind: str | None = None,
) -> NoReturn:
    """Report an error (JSON on stdout with ``--json``, else on stderr) and exit with ``code``."""
    if as_json:
        print_json(
            {
                "ok": False,
                "error": kind or ("usage" if code == EXIT_USAGE else "invalid_input"),
                "message": message,
                "source": source,
                "problems": [p.to_dict() for p in problems],
                "exit_code": code,
            }
        )
    else:
        head = f"{escape(source)}: " if source else ""
        err.print(f"[red]error[/red]: {head}{escape(message)}")
        for p in problems:
            err.print(problem_line(p))
    raise typer.Exit(code)


def warn(message: str) -> None:
    err.print(f"[yellow]warning[/yellow]: {escape(message)}")


def problem_line(p: Problem, indent: str = "  ") -> str:
    colour = "red" if p.severity == "error" else "yellow"
    found = (
        ""
        if p.found is None
        else f" [dim](found {escape(json.dumps(p.found, ensure_ascii=False, default=str))})[/dim]"
    )
    return (
        f"{indent}[{colour}]{p.severity}[/{colour}] [bold]{escape(p.path)}[/bold]: "
        f"{escape(p.message)}{found}\n{indent}    fix: {escape(p.fix)}"
    )


def parse_vars(pairs: list[str] | None) -> dict[str, str]:
    """``--var key=value`` (the one meaning everywhere); a bad one is a usage error."""
    values: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(
                f"{pair!r}: write --var key=value (e.g. --var customer_name=Priya)",
                param_hint="--var",
            )
        values[key.strip()] = value
    return values


def context_from(pairs: list[str] | None, webhook_url: str | None = None) -> CallContext:
    from ..context import CallContext

    values = parse_vars(pairs)
    system = {k: values.pop(k) for k in list(values) if k in SYSTEM_VARIABLES}
    return CallContext(**system, variables=values, webhook_url=webhook_url)


def check_dialect(to: str, choices: Sequence[str] = DIALECT_NAMES) -> str:
    if to not in choices:
        from ..validation import did_you_mean

        hint = did_you_mean(to, choices)
        guess = f"did you mean {hint!r}? " if hint else ""
        raise typer.BadParameter(
            f"{to!r} is not a dialect here; {guess}use one of {', '.join(choices)}",
            param_hint="--to",
        )
    return to


def sandbox_mode(value: str) -> SandboxMode:
    if value == "isolated":
        return "isolated"
    if value == "unsafe-process":
        err.print(
            "[yellow]warning[/yellow]: --sandbox unsafe-process gives NO isolation between "
            "tenants: customer code runs without namespaces (rlimits and seccomp only), can read "
            "other tenants' live memory and kill their calls, and can read this host's files. "
            "Use it only for code you trust, with a single workspace."
        )
        return "unsafe-process"
    raise typer.BadParameter("use isolated or unsafe-process", param_hint="--sandbox")
