"""``invoke``: run one function once and show what was sent and what the LLM reads (in-call
functions) or what it returned (pre- and post-call ones)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._app import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    AllowOpt,
    HttpsOnlyOpt,
    JsonOpt,
    PrivateOpt,
    SandboxOpt,
    VarOpt,
    app,
    context_from,
    escape,
    fail,
    out,
    parse_vars,
    print_json,
    sandbox_mode,
)
from ._functions import load_one

if TYPE_CHECKING:
    from ..results import ToolResult
    from ..spec import Function


class _Webhooks(logging.Handler):
    """Collects what the webhook sender logs about failures (it never raises)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.failures: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.failures.append(record.getMessage())


def _not_sent(result: ToolResult) -> str | None:
    """Why the request was never sent (refused before any byte left), or None."""
    data = result.data if isinstance(result.data, dict) else {}
    detail = str(data.get("detail", ""))
    if data.get("reason") == "blocked" and "(at " not in detail:
        return "refused by the egress policy"
    if data.get("reason") in ("template", "missing_arguments", "invalid_arguments"):
        return "the request could not be built"
    return None


@app.command("invoke")
def invoke_cmd(
    file: Annotated[Path, typer.Argument(help="A function file in any loadable dialect.")],
    args: Annotated[
        str, typer.Option("--args", help="The arguments as the LLM would send them (JSON).")
    ] = "{}",
    var: VarOpt = None,
    allow_private_network: PrivateOpt = False,
    allow: AllowOpt = None,
    https_only: HttpsOnlyOpt = False,
    sandbox: SandboxOpt = "isolated",
    webhook_url: Annotated[
        str | None,
        typer.Option(
            "--webhook-url",
            envvar="VOICEFN_WEBHOOK_URL",
            help="The agent-level webhook URL (pre-call webhook fallback).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run one function once: print the request sent and the result the LLM would read.

    Exit 0 when the function succeeded, 1 when its result is an error (it is still printed).
    """
    import asyncio

    from ..executor import Executor

    values = parse_vars(var)
    mode = sandbox_mode(sandbox)
    report = load_one(file, list(values), as_json=as_json)
    assert report.function is not None
    function = report.function
    context = context_from(var, webhook_url)
    hooks = _Webhooks()
    hook_log = logging.getLogger("voicefn.webhooks")
    sent = {"count": 0}

    async def go() -> ToolResult:
        async with Executor(
            allow_private_network=allow_private_network,
            allow=allow or (),
            https_only=https_only,
            sandbox_mode=mode,
        ) as ex:
            result = await ex.run(function, args, context, tool_call_id="cli")
            await ex.webhooks.drain(10.0)
            sent["count"] = ex.webhooks.sent
            return result

    hook_log.addHandler(hooks)
    try:
        result = asyncio.run(go())
    except ValueError as exc:  # a bad --allow entry
        fail(str(exc), as_json=as_json, code=EXIT_USAGE, kind="usage")
    finally:
        hook_log.removeHandler(hooks)
    webhook = _webhook_summary(function, webhook_url, sent["count"], hooks.failures)
    not_sent = _not_sent(result)
    if as_json:
        print_json(
            {
                **result.to_dict(),
                "sent": result.request is not None and not_sent is None,
                "webhook": webhook,
            }
        )
    else:
        _print_result(function, result, not_sent, webhook)
    raise typer.Exit(EXIT_OK if result.ok else EXIT_INVALID)


def _webhook_summary(
    function: Function, agent_url: str | None, sent: int, failures: list[str]
) -> dict[str, Any] | None:
    action = function.action
    if action.pre_call_webhook_param is None:
        return None
    url = action.pre_call_webhook_url or agent_url
    if url is None:
        return {
            "url": None,
            "sent": False,
            "detail": "no URL: set pre_call_webhook_url or pass --webhook-url",
        }
    if sent:
        return {"url": url, "sent": True, "detail": None}
    return {"url": url, "sent": False, "detail": "; ".join(failures) or "not sent"}


def _print_result(
    function: Function, result: ToolResult, not_sent: str | None, webhook: dict[str, Any] | None
) -> None:
    if webhook is not None:
        verdict = (
            "[green]sent[/green]"
            if webhook["sent"]
            else f"[red]not sent[/red]: {escape(str(webhook['detail']))}"
        )
        out.print(f"[bold]webhook[/bold]  POST {escape(str(webhook['url'] or '-'))} {verdict}")
    if result.request is not None:
        r = result.request
        tail = f"  [red](not sent: {not_sent})[/red]" if not_sent else ""
        out.print(f"[bold]request[/bold]  {r.method} {escape(r.url)}{tail}")
        from ..redaction import REDACTED

        for k, v in r.headers.items():
            style = "magenta" if v == REDACTED else "dim"
            out.print(f"  [{style}]{escape(k)}: {escape(v)}[/{style}]")
        if r.body is not None:
            out.print("  " + escape(json.dumps(r.body, ensure_ascii=False)))
    elif result.sandbox is not None:
        from ..sandbox.http_failure import redacted_url

        box = result.sandbox
        out.print(f"[bold]sandbox[/bold]  {box.get('mode')} ({function.action.type})")
        for req in box.get("http") or []:
            status = req.get("status", req.get("error"))
            url = redacted_url(str(req.get("url")))
            out.print(
                f"  [dim]{escape(str(req.get('method')))} {escape(url)} -> {escape(str(status))}[/dim]"
            )
        for line in result.logs:
            out.print(
                f"  [dim]log {escape(str(line.get('level')))}: {escape(str(line.get('message')))}[/dim]"
            )
        if box.get("stopped_by"):
            out.print(f"  [yellow]stopped by: {escape(str(box['stopped_by']))}[/yellow]")
    elif result.directive is not None:
        _print_directive(result.directive)
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
    full = _developer_detail(result)
    if full is not None:
        out.print(f"[bold]detail[/bold]   {escape(full)}")
    # Only an in-call function's result goes to the LLM; pre- and post-call ones run outside it.
    if function.phase == "in_call":
        out.print("[bold]the LLM reads[/bold]")
    else:
        out.print(f"[bold]returned[/bold] [dim]({function.phase}: no LLM reads it)[/dim]")
    out.print(escape(result.content))


def _developer_detail(result: ToolResult) -> str | None:
    """The failure's whole detail when the LLM reads a shorter one (a sandboxed function's
    failed HTTP request: the request, the engine's reason and the fix), else None."""
    data = result.data if isinstance(result.data, dict) else {}
    detail = data.get("detail")
    if result.ok or not isinstance(detail, str) or not detail:
        return None
    try:
        shown = json.loads(result.content)
    except ValueError:
        return detail
    return None if isinstance(shown, dict) and shown.get("detail") == detail else detail


def _print_directive(d: dict[str, Any]) -> None:
    """A builtin's directive: what the host would carry out (nothing is dialled here)."""
    kind = d.get("builtin")
    if kind == "transfer_call":
        reason = f" ({escape(str(d['reason']))})" if d.get("reason") else ""
        out.print(f"[bold]transfer[/bold] to {escape(str(d.get('number')))}{reason}")
    elif kind == "send_sms":
        out.print(
            f"[bold]sms[/bold]      to {escape(str(d.get('to')))} from {escape(str(d.get('from')))}: "
            f"{escape(str(d.get('body')))}"
        )
    elif kind == "end_call":
        goodbye = f": {escape(str(d['message']))}" if d.get("message") else ""
        out.print(f"[bold]end call[/bold]{goodbye}")
    out.print("[dim](a builtin: the host carries it out; `voicefn call --twilio` does)[/dim]")
