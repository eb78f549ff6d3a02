"""The ``voicefn`` command line. Human output by default, ``--json`` for machines."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from .actions.code import SandboxMode
from .context import SYSTEM_VARIABLES, CallContext
from .dialects import DIALECTS, Report, dump, read_documents, validate
from .executor import Executor
from .redaction import REDACTED
from .validation import FunctionValidationError, Problem

if TYPE_CHECKING:
    from .telephony.twilio import TwilioTelephony

app = typer.Typer(
    help="voicefn: custom functions for voice AI agents: validate, convert, import and run them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
VarOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--var",
        help="A context variable, key=value (repeatable). System variables: "
        + ", ".join(SYSTEM_VARIABLES)
        + "; anything else is a dynamic variable.",
    ),
]

PrivateOpt = Annotated[
    bool,
    typer.Option(
        "--allow-private-network", help="Allow loopback/private addresses (local development)."
    ),
]
SandboxOpt = Annotated[
    str,
    typer.Option(
        "--sandbox",
        help="How customer code runs: isolated (default; refuses if the host cannot isolate) or "
        "unsafe-process (weaker, an explicit operator choice).",
    ),
]
AllowOpt = Annotated[
    list[str] | None,
    typer.Option("--allow", help="Allow a host or CIDR despite the egress policy (repeatable)."),
]


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _parse_vars(pairs: list[str] | None) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r}: write --var key=value", param_hint="--var")
        values[key.strip()] = value
    return values


def _context(pairs: list[str] | None, webhook_url: str | None = None) -> CallContext:
    values = _parse_vars(pairs)
    system = {k: values.pop(k) for k in list(values) if k in SYSTEM_VARIABLES}
    return CallContext(**system, variables=values, webhook_url=webhook_url)


def _problem_line(p: Problem) -> str:
    colour = "red" if p.severity == "error" else "yellow"
    found = (
        ""
        if p.found is None
        else f" [dim](found {escape(json.dumps(p.found, ensure_ascii=False))})[/dim]"
    )
    return f"  [{colour}]{p.severity}[/{colour}] [bold]{escape(p.path)}[/bold]: {escape(p.message)}{found}\n      fix: {escape(p.fix)}"


def _reports(path: Path, variables: list[str]) -> list[Report]:
    try:
        docs = read_documents(path)
    except FunctionValidationError as exc:
        return [Report(None, None, exc.problems, str(path))]
    except OSError as exc:
        return [
            Report(
                None,
                None,
                [Problem("$", f"cannot read file: {exc.strerror}", "check the path")],
                str(path),
            )
        ]
    label = str(path)
    return [
        validate(doc, variables=variables, source=label if len(docs) == 1 else f"{label}[{i}]")
        for i, doc in enumerate(docs)
    ]


def _load_one(path: Path, variables: list[str]) -> Report:
    reports = _reports(path, variables)
    if len(reports) != 1:
        err.print(f"[red]{path}: holds {len(reports)} functions; give a file with one[/red]")
        raise typer.Exit(2)
    report = reports[0]
    if not report.ok:
        err.print(f"[red]{escape(str(path))}: {len(report.errors)} problem(s)[/red]")
        for p in report.problems:
            err.print(_problem_line(p))
        raise typer.Exit(1)
    return report


@app.command("validate")
def validate_cmd(
    files: Annotated[
        list[Path], typer.Argument(help="Function files (JSON or YAML), any dialect.")
    ],
    var: Annotated[
        list[str] | None,
        typer.Option("--var", help="Name a dynamic variable the agent provides (repeatable)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check function files; exit 0 when all are valid, 1 with every problem listed."""
    variables = [v.partition("=")[0] for v in var or []]
    reports = [r for f in files for r in _reports(f, variables)]
    if as_json:
        _print_json(
            [
                {
                    "source": r.source,
                    "dialect": r.dialect,
                    "name": r.function.name if r.function else None,
                    "valid": r.ok,
                    "problems": [p.to_dict() for p in r.problems],
                }
                for r in reports
            ]
        )
    else:
        for r in reports:
            if r.ok:
                assert r.function is not None
                out.print(
                    f"[green]ok[/green] {escape(r.source or '')}: {r.function.name} ({r.dialect})"
                )
            else:
                out.print(f"[red]invalid[/red] {escape(r.source or '')}: {len(r.errors)} error(s)")
            for p in r.problems:
                out.print(_problem_line(p))
    raise typer.Exit(0 if all(r.ok for r in reports) else 1)


def _sandbox_mode(value: str) -> SandboxMode:
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


def _check_dialect(to: str) -> str:
    if to not in DIALECTS:
        raise typer.BadParameter(
            f"{to!r} is not a dialect; use one of {', '.join(DIALECTS)}", param_hint="--to"
        )
    return to


@app.command("convert")
def convert_cmd(
    file: Annotated[Path, typer.Argument(help="A function file in any loadable dialect.")],
    to: Annotated[str, typer.Option("--to", help="Target: " + ", ".join(DIALECTS))],
    var: VarOpt = None,
) -> None:
    """Write a function in another dialect (LLM dialects show exactly what the LLM sees)."""
    _check_dialect(to)
    report = _load_one(file, [v.partition("=")[0] for v in var or []])
    assert report.function is not None
    doc, lost = dump(report.function, to, context=_context(var) if var else None)
    for what in lost:
        err.print(f"[yellow]warning[/yellow]: {to} cannot carry {escape(what)}; dropped")
    _print_json(doc)


@app.command("from-curl")
def from_curl_cmd(
    command: Annotated[
        str, typer.Argument(help="The cURL command, quoted; '-' reads it from stdin.")
    ],
    to: Annotated[str, typer.Option("--to", help="Output dialect.")] = "bolna",
    name: Annotated[str | None, typer.Option("--name", help="The function's name.")] = None,
) -> None:
    """Turn a cURL command (from API docs, Postman or devtools) into a function."""
    from .dialects.curl import CurlParseError, from_curl

    _check_dialect(to)
    text = sys.stdin.read() if command == "-" else command
    try:
        imported = from_curl(text, name=name)
    except CurlParseError as exc:
        err.print(f"[red]error[/red]: {escape(str(exc))}")
        raise typer.Exit(1) from None
    for w in imported.warnings:
        err.print(f"[yellow]warning[/yellow]: {escape(w)}")
    doc, lost = dump(imported.function, to)
    for what in lost:
        err.print(f"[yellow]warning[/yellow]: {to} cannot carry {escape(what)}; dropped")
    _print_json(doc)


@app.command("invoke")
def invoke_cmd(
    file: Annotated[Path, typer.Argument(help="A function file in any loadable dialect.")],
    args: Annotated[
        str, typer.Option("--args", help="The arguments as the LLM would send them (JSON).")
    ] = "{}",
    var: VarOpt = None,
    allow_private_network: PrivateOpt = False,
    allow: AllowOpt = None,
    https_only: Annotated[
        bool, typer.Option("--https-only", help="Refuse plain-http URLs.")
    ] = False,
    sandbox: SandboxOpt = "isolated",
    webhook_url: Annotated[
        str | None,
        typer.Option(
            "--webhook-url", help="The agent-level webhook URL (pre-call webhook fallback)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run one function once: print the request sent and the result the LLM would read.

    Exit 0 when the function succeeded, 1 when its result is an error (it is still printed).
    """
    report = _load_one(file, [v.partition("=")[0] for v in var or []])
    assert report.function is not None
    function = report.function
    try:
        context = _context(var, webhook_url)
        executor_kwargs = {
            "allow_private_network": allow_private_network,
            "allow": allow or (),
            "https_only": https_only,
            "sandbox_mode": _sandbox_mode(sandbox),
        }

        async def go() -> Any:
            async with Executor(**executor_kwargs) as ex:  # type: ignore[arg-type]
                return await ex.run(function, args, context, tool_call_id="cli")

        result = asyncio.run(go())
    except ValueError as exc:  # a bad --allow entry
        err.print(f"[red]error[/red]: {escape(str(exc))}")
        raise typer.Exit(2) from None
    if as_json:
        _print_json(result.to_dict())
    else:
        if result.request is not None:
            r = result.request
            out.print(f"[bold]request[/bold]  {r.method} {escape(r.url)}")
            for k, v in r.headers.items():
                style = "magenta" if v == REDACTED else "dim"
                out.print(f"  [{style}]{escape(k)}: {escape(v)}[/{style}]")
            if r.body is not None:
                out.print("  " + escape(json.dumps(r.body, ensure_ascii=False)))
        elif result.sandbox is not None:
            box = result.sandbox
            out.print(f"[bold]sandbox[/bold]  {box.get('mode')} ({function.action.type})")
            for req in box.get("http") or []:
                status = req.get("status", req.get("error"))
                out.print(
                    f"  [dim]{escape(str(req.get('method')))} {escape(str(req.get('url')))} -> {escape(str(status))}[/dim]"
                )
            for line in result.logs:
                out.print(
                    f"  [dim]log {escape(str(line.get('level')))}: {escape(str(line.get('message')))}[/dim]"
                )
            if box.get("stopped_by"):
                out.print(f"  [yellow]stopped by: {escape(str(box['stopped_by']))}[/yellow]")
        else:
            out.print("[bold]request[/bold]  not sent")
        if result.from_context:
            out.print(f"[dim]filled from context: {', '.join(result.from_context)}[/dim]")
        if result.ignored_arguments:
            out.print(
                f"[yellow]ignored undeclared arguments: {', '.join(result.ignored_arguments)}[/yellow]"
            )
        status = f" {result.status}" if result.status is not None else ""
        verdict = "[green]ok[/green]" if result.ok else f"[red]{result.error}[/red]"
        t = result.timings
        req = f", request {t.request_ms:.1f} ms" if t.request_ms is not None else ""
        out.print(f"[bold]result[/bold]   {verdict}{status} ({t.total_ms:.1f} ms total{req})")
        out.print("[bold]the LLM reads[/bold]")
        out.print(escape(result.content))
    raise typer.Exit(0 if result.ok else 1)


@app.command("call")
def call_cmd(
    agent_file: Annotated[Path, typer.Argument(help="An agent file (YAML or JSON).")],
    var: VarOpt = None,
    script: Annotated[
        Path | None, typer.Option("--script", help="A scripted caller: one line per turn.")
    ] = None,
    allow_private_network: PrivateOpt = False,
    allow: AllowOpt = None,
    sandbox: SandboxOpt = "isolated",
    model: Annotated[
        str | None, typer.Option("--model", help="Override the agent's LLM model.")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="Override the OpenAI-compatible endpoint.")
    ] = None,
    language: Annotated[
        str | None, typer.Option("--language", help="The call's language (filler lines).")
    ] = None,
    twilio: Annotated[
        bool,
        typer.Option("--twilio", help="Carry out transfers and SMS through Twilio (TWILIO_* env)."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Have a text call with an agent: its words, fillers, function calls and results."""
    from .runtime.agent import load_agent
    from .runtime.session import CallSession
    from .runtime.simulator import run_call, script_reader, stdin_reader

    try:
        agent = load_agent(agent_file)
    except FunctionValidationError as exc:
        err.print(f"[red]{escape(str(agent_file))}: invalid agent[/red]")
        for p in exc.problems:
            err.print(_problem_line(p))
        raise typer.Exit(1) from None
    except (OSError, ValueError) as exc:
        err.print(f"[red]error[/red]: {escape(str(exc))}")
        raise typer.Exit(1) from None
    if model or base_url:
        agent = agent.model_copy(
            update={
                "llm": agent.llm.model_copy(
                    update={k: v for k, v in (("model", model), ("base_url", base_url)) if v}
                )
            }
        )
    lines = script.read_text(encoding="utf-8").splitlines() if script else None
    telephony: TwilioTelephony | None = None
    if twilio:
        from .telephony.twilio import TelephonyError, TwilioTelephony

        try:
            telephony = TwilioTelephony.from_env()
        except TelephonyError as exc:
            err.print(f"[red]error[/red]: {escape(str(exc))}")
            raise typer.Exit(2) from None

    async def go() -> dict[str, Any]:
        async with (
            Executor(
                allow_private_network=allow_private_network,
                allow=allow or (),
                sandbox_mode=_sandbox_mode(sandbox),
            ) as ex,
            CallSession(agent, executor=ex, context=_context(var), language=language) as session,
        ):
            reader = script_reader(lines) if lines is not None else stdin_reader(out)
            shown = None if as_json else out
            if lines is not None and not as_json:
                reader = _echoing(reader)
            return await run_call(session, reader, console=shown, telephony=telephony)

    try:
        summary = asyncio.run(go())
    except ValueError as exc:
        err.print(f"[red]error[/red]: {escape(str(exc))}")
        raise typer.Exit(2) from None
    finally:
        if telephony is not None:
            telephony.close()
    if as_json:
        _print_json(summary)
    if summary["errors"]:  # the call went on, but something failed: say so in the exit code
        if not as_json:
            err.print(f"[red]the call had {summary['errors']} error(s)[/red]")
        raise typer.Exit(1)


def _echoing(
    reader: Callable[[], Awaitable[str | None]],
) -> Callable[[], Awaitable[str | None]]:
    async def next_line() -> str | None:
        line = await reader()
        if line is not None and line.strip():
            out.print(f"[bold green]you>[/bold green] {escape(line)}")
        return line

    return next_line


@app.command("generate")
def generate_cmd(
    description: Annotated[str, typer.Argument(help="What the function should do, in words.")],
    lang: Annotated[
        str, typer.Option("--lang", help="python (pre/in-call) or javascript (post-call).")
    ] = "python",
    args: Annotated[
        str | None,
        typer.Option(
            "--args",
            help="Sample arguments (JSON) for the test run; default: the model proposes them.",
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="LLM model (default: VOICEFN_LLM_MODEL).")
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="OpenAI-compatible endpoint (default: OPENAI_BASE_URL)."),
    ] = None,
    max_attempts: Annotated[
        int, typer.Option("--max-attempts", min=1, max=10, help="Tries before giving up.")
    ] = 3,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Also write the code to this file.")
    ] = None,
    sandbox: Annotated[
        str,
        typer.Option(
            "--sandbox",
            help="isolated (default) or unsafe-process (weaker; an explicit operator choice).",
        ),
    ] = "isolated",
    allow_private_network: PrivateOpt = False,
    allow: AllowOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Generate a Python or JavaScript function with an LLM, check it and run it once in the sandbox."""
    import openai

    from .generate import generate
    from .runtime.agent import LLMSettings

    if lang not in ("python", "javascript"):
        raise typer.BadParameter("use python or javascript", param_hint="--lang")
    mode = _sandbox_mode(sandbox)
    try:
        sample = json.loads(args) if args is not None else None
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--args") from None
    settings = LLMSettings(model=model, base_url=base_url)
    try:
        resolved_model = settings.resolved_model()
    except ValueError as exc:
        err.print(f"[red]error[/red]: {escape(str(exc))}; or pass --model")
        raise typer.Exit(2) from None

    async def go() -> Any:
        llm = openai.AsyncOpenAI(
            base_url=settings.resolved_base_url(),
            api_key=settings.resolved_api_key(),
            max_retries=1,
        )
        try:
            async with Executor(
                allow_private_network=allow_private_network,
                allow=allow or (),
                sandbox_mode=mode,
            ) as ex:
                return await generate(
                    description,
                    language=lang,  # type: ignore[arg-type]
                    llm=llm,
                    model=resolved_model,
                    executor=ex,
                    arguments=sample,
                    max_attempts=max_attempts,
                )
        finally:
            await llm.close()

    try:
        generated = asyncio.run(go())
    except openai.APIError as exc:
        err.print(f"[red]error[/red]: the LLM request failed: {escape(str(exc))}")
        raise typer.Exit(1) from None
    if out_file is not None and generated.code:
        out_file.write_text(generated.code, encoding="utf-8")
    if as_json:
        _print_json(
            {
                "ok": generated.ok,
                "language": generated.language,
                "code": generated.code,
                "arguments": generated.arguments,
                "result": generated.result,
                "attempts": [
                    {"problems": a.problems, "error": a.error, "result": a.result}
                    for a in generated.attempts
                ],
            }
        )
    else:
        for i, attempt in enumerate(generated.attempts, 1):
            verdict = "[green]ok[/green]" if attempt.ok else "[red]rejected[/red]"
            out.print(f"[bold]attempt {i}[/bold]: {verdict}")
            for problem in attempt.problems:
                out.print(f"  - {escape(problem)}")
            if attempt.error:
                out.print(f"  - run failed: {escape(attempt.error)}")
        out.print(f"[bold]code[/bold] ({generated.language})")
        out.print(escape(generated.code))
        out.print(
            f"[bold]ran with[/bold] {escape(json.dumps(generated.arguments, ensure_ascii=False))}"
        )
        out.print(
            f"[bold]returned[/bold] {escape(json.dumps(generated.result, ensure_ascii=False))}"
        )
    raise typer.Exit(0 if generated.ok else 1)


def main() -> None:
    app()
