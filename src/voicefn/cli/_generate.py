"""``generate``: an LLM writes a Python or JavaScript function; it is checked and run once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ._app import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    AllowOpt,
    JsonOpt,
    PrivateOpt,
    SandboxOpt,
    app,
    escape,
    fail,
    out,
    print_json,
    sandbox_mode,
)


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
    sandbox: SandboxOpt = "isolated",
    allow_private_network: PrivateOpt = False,
    allow: AllowOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Generate a Python or JavaScript function with an LLM, check it and run it once in the sandbox."""
    import asyncio

    from ..executor import Executor
    from ..generate import generate
    from ..runtime.agent import LLMSettings
    from ..runtime.llm_client import LLMClient, LLMError
    from ..validation import check_url

    if lang not in ("python", "javascript"):
        raise typer.BadParameter("use python or javascript", param_hint="--lang")
    mode = sandbox_mode(sandbox)
    try:
        sample = json.loads(args) if args is not None else None
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--args") from None
    if base_url is not None:
        bad = check_url(base_url, ("--base-url",), "--base-url")
        if bad:
            raise typer.BadParameter(f"{bad[0].message}; {bad[0].fix}", param_hint="--base-url")
    settings = LLMSettings(model=model, base_url=base_url)
    try:
        resolved_model = settings.resolved_model()
    except ValueError as exc:
        fail(f"{exc}; or pass --model", as_json=as_json, code=EXIT_USAGE)

    async def go() -> Any:
        llm = LLMClient(settings.resolved_base_url(), settings.resolved_api_key(), max_retries=1)
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
            await llm.aclose()

    try:
        generated = asyncio.run(go())
    except LLMError as exc:
        fail(
            f"the LLM request to {settings.endpoint()} failed: {exc}",
            as_json=as_json,
            kind="llm_failed",
        )
    if out_file is not None and generated.code:
        out_file.write_text(generated.code, encoding="utf-8")
    if as_json:
        print_json(
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
    raise typer.Exit(EXIT_OK if generated.ok else EXIT_INVALID)
