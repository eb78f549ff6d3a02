"""``call`` (a text call with an agent) and ``tools`` (what the LLM sees for a whole agent)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._app import (
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_USAGE,
    LLM_DIALECTS,
    AllowOpt,
    JsonOpt,
    PrivateOpt,
    SandboxOpt,
    VarOpt,
    app,
    check_dialect,
    context_from,
    err,
    escape,
    fail,
    out,
    parse_vars,
    print_json,
    problem_line,
    sandbox_mode,
)

if TYPE_CHECKING:
    from ..actions.code import SandboxMode
    from ..egress import EgressPolicy
    from ..runtime.agent import Agent
    from ..telephony.twilio import TwilioTelephony
    from ..testing import ScriptItem


def _agent(
    path: Path, variables: list[str], *, as_json: bool, egress: EgressPolicy | None = None
) -> Agent:
    """The valid agent in ``path`` (warnings on stderr), or exit 1 with every problem.

    ``egress`` is the policy an ``{mcp: ...}`` entry's server is reached through while the
    agent loads (the command's own egress options; default: the environment's)."""
    from ..runtime.agent import validate_agent

    report = validate_agent(path, variables=variables, egress=egress)
    problems = report.all_problems()
    if not report.ok or report.agent is None:
        fail(
            f"invalid agent: {len(report.errors)} error(s)",
            as_json=as_json,
            problems=problems,
            source=str(path),
        )
    if not as_json:
        for p in problems:
            err.print(problem_line(p))
    return report.agent


@app.command("tools")
def tools_cmd(
    agent_file: Annotated[Path, typer.Argument(help="An agent file (YAML or JSON).")],
    to: Annotated[
        str, typer.Option("--to", help="Tool format: " + ", ".join(LLM_DIALECTS))
    ] = "openai",
    var: VarOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print exactly what the LLM sees for a whole agent: the system prompt as rendered, the
    welcome message and every in-call function as a tool (context-filled parameters left out).
    """
    check_dialect(to, LLM_DIALECTS)
    values = parse_vars(var)
    agent = _agent(agent_file, list(values), as_json=as_json)  # tools: the environment's policy
    view = agent.llm_view(context_from(var), to)
    if as_json:
        print_json({"ok": True, "agent": agent.name, "dialect": to, **view})
        return
    out.print("[bold]system prompt[/bold] (the first message of every request)")
    out.print(escape(view["system_prompt"]))
    if view["welcome_message"]:
        out.print("[bold]welcome message[/bold] (said first; the first assistant message)")
        out.print(escape(view["welcome_message"]))
    out.print(f"[bold]tools[/bold] ({len(view['tools'])}, {to} format)")
    import json

    out.print(escape(json.dumps(view["tools"], indent=2, ensure_ascii=False)))


@contextlib.contextmanager
def _scripted_llm(items: list[ScriptItem] | None) -> Iterator[str | None]:
    if items is None:
        yield None
        return
    from ..testing import ScriptedLLM

    with ScriptedLLM(items) as llm:
        yield llm.base_url


@app.command("call")
def call_cmd(
    agent_file: Annotated[Path, typer.Argument(help="An agent file (YAML or JSON).")],
    var: VarOpt = None,
    script: Annotated[
        Path | None,
        typer.Option("--script", help="A scripted caller: one line per turn (else: type)."),
    ] = None,
    llm_script: Annotated[
        Path | None,
        typer.Option(
            "--llm-script",
            help="No hosted LLM: the LLM's answers, in order, from a YAML/JSON list "
            "(text, tool_calls, error), served by a local scripted LLM.",
        ),
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
    """Have a text call with an agent: its words, fillers, function calls and results.

    Type a line per turn; /quit, end of input or Ctrl-C hangs up (post-call functions still
    run). Exit 0 when the call went through, 1 when anything failed (an LLM request, a turn, a
    telephony request): the LLM endpoint is named when it cannot be reached. The agent webhook
    is signed with VOICEFN_WEBHOOK_SECRET (a whsec_ secret) when it is set.
    """
    import asyncio
    import os

    from ..runtime.postcall_inline import SECRET_ENV, check_signing_secret
    from ..validation import check_url

    signing_secret = os.environ.get(SECRET_ENV) or None
    try:
        check_signing_secret(signing_secret, where=SECRET_ENV)
    except ValueError as exc:
        fail(str(exc), as_json=as_json, code=EXIT_USAGE)

    values = parse_vars(var)
    mode = sandbox_mode(sandbox)
    if base_url is not None:
        bad = check_url(base_url, ("--base-url",), "--base-url")
        if bad:
            raise typer.BadParameter(f"{bad[0].message}; {bad[0].fix}", param_hint="--base-url")
    from ..egress import EgressPolicy

    try:
        policy = EgressPolicy.from_strings(allow or (), allow_private_network=allow_private_network)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--allow") from None
    agent = _agent(agent_file, list(values), as_json=as_json, egress=policy)
    replies: list[ScriptItem] | None = None
    if llm_script is not None:
        replies = _read_llm_script(llm_script, as_json)
    lines: list[str] | None = None
    if script is not None:
        try:
            lines = script.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            from ..dialects import unreadable

            fail(unreadable(script, exc).message, as_json=as_json, source="--script")
    telephony: TwilioTelephony | None = None
    if twilio:
        from ..telephony.twilio import TelephonyError, TwilioTelephony

        try:
            telephony = TwilioTelephony.from_env()
        except TelephonyError as exc:
            fail(str(exc), as_json=as_json, code=EXIT_USAGE)
    try:
        with _scripted_llm(replies) as scripted_url:
            agent = _with_llm(agent, model, scripted_url or base_url, scripted=replies is not None)
            try:
                agent.llm.resolved_model()
            except ValueError as exc:
                fail(f"{exc}; or pass --model", as_json=as_json, code=EXIT_USAGE)
            summary = asyncio.run(
                _run(
                    agent,
                    var,
                    lines,
                    telephony,
                    language,
                    mode,
                    as_json,
                    allow_private_network,
                    allow,
                    signing_secret,
                )
            )
    except KeyboardInterrupt:  # a second Ctrl-C while the call was ending
        err.print("[yellow]interrupted[/yellow]")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except ValueError as exc:  # a bad --allow entry
        fail(str(exc), as_json=as_json, code=EXIT_USAGE)
    finally:
        if telephony is not None:
            telephony.close()
    summary["ok"] = not summary["errors"]
    if as_json:
        print_json(summary)
    if summary["errors"]:  # the call went on, but something failed: say so in the exit code
        if not as_json:
            err.print(f"[red]the call had {summary['errors']} error(s)[/red]")
        raise typer.Exit(EXIT_INVALID)


def _read_llm_script(path: Path, as_json: bool) -> list[ScriptItem]:
    from ..dialects import unreadable
    from ..validation import FunctionValidationError
    from ._llm_script import read_llm_script

    try:
        return read_llm_script(path)
    except FunctionValidationError as exc:
        fail("invalid LLM script", as_json=as_json, problems=exc.problems, source=str(path))
    except OSError as exc:
        fail(unreadable(path, exc).message, as_json=as_json, source="--llm-script")


def _with_llm(agent: Agent, model: str | None, base_url: str | None, *, scripted: bool) -> Agent:
    update: dict[str, Any] = {k: v for k, v in (("model", model), ("base_url", base_url)) if v}
    if scripted:
        update["max_retries"] = 0  # one scripted answer per request, no retry consuming another
        if not (model or agent.llm.model):
            update["model"] = "scripted"
    if not update:
        return agent
    return agent.model_copy(update={"llm": agent.llm.model_copy(update=update)})


async def _run(
    agent: Agent,
    var: list[str] | None,
    lines: list[str] | None,
    telephony: TwilioTelephony | None,
    language: str | None,
    mode: SandboxMode,
    as_json: bool,
    allow_private_network: bool,
    allow: list[str] | None,
    signing_secret: str | None = None,
) -> dict[str, Any]:
    import asyncio
    import signal

    from ..executor import Executor
    from ..runtime.session import CallSession
    from ..runtime.simulator import run_call, script_reader, stdin_reader

    loop = asyncio.get_running_loop()
    hangup = asyncio.Event()

    def on_sigint() -> None:  # the first Ctrl-C hangs up; a second one interrupts
        hangup.set()
        loop.remove_signal_handler(signal.SIGINT)

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        async with (
            Executor(
                allow_private_network=allow_private_network,
                allow=allow or (),
                sandbox_mode=mode,
            ) as ex,
            CallSession(
                agent,
                executor=ex,
                context=context_from(var),
                language=language,
                signing_secret=signing_secret,
            ) as session,
        ):
            shown = None if as_json else out.console
            if lines is not None:
                reader = script_reader(lines)
                if not as_json:
                    reader = _echoing(reader)
            else:
                if not as_json:
                    err.print("[dim](type a line per turn; /quit or Ctrl-C hangs up)[/dim]")
                reader = stdin_reader((err if as_json else out).console)
            return await run_call(
                session,
                reader,
                console=shown,
                telephony=telephony,
                hangup=hangup,
                endpoint=agent.llm.endpoint(),
            )
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGINT)


def _echoing(
    reader: Callable[[], Awaitable[str | None]],
) -> Callable[[], Awaitable[str | None]]:
    async def next_line() -> str | None:
        line = await reader()
        if line is not None and line.strip():
            out.print(f"[bold green]you>[/bold green] {escape(line)}")
        return line

    return next_line
