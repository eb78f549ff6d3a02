"""``validate``, ``convert`` and ``from-curl``: function (and agent) files, nothing sent."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._app import (
    DIALECT_NAMES,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    JsonOpt,
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
    warn,
)

if TYPE_CHECKING:
    from ..dialects import Report
    from ..runtime.agent import AgentReport


def function_reports(path: Path, variables: list[str]) -> list[Report]:
    """One report per function document in a file (a problem report if it cannot be read)."""
    from ..dialects import Report, read_file, unreadable, validate
    from ..validation import FunctionValidationError

    try:
        data = read_file(path)
    except FunctionValidationError as exc:
        return [Report(None, None, exc.problems, str(path))]
    except OSError as exc:
        return [Report(None, None, [unreadable(path, exc)], str(path))]
    docs = data if isinstance(data, list) else [data]
    label = str(path)
    return [
        validate(doc, variables=variables, source=label if len(docs) == 1 else f"{label}[{i}]")
        for i, doc in enumerate(docs)
    ]


def load_one(path: Path, variables: list[str], *, as_json: bool) -> Report:
    """The one valid function in ``path``, or exit 1 listing every problem."""
    reports = function_reports(path, variables)
    if len(reports) != 1:
        fail(
            f"the file holds {len(reports)} functions; give a file with one",
            as_json=as_json,
            code=EXIT_USAGE,
            source=str(path),
        )
    report = reports[0]
    if not report.ok:
        fail(
            f"{len(report.errors)} problem(s)",
            as_json=as_json,
            problems=report.problems,
            source=str(path),
        )
    for p in report.warnings:
        if not as_json:
            err.print(problem_line(p))
    return report


def _report_json(r: Report) -> dict[str, Any]:
    return {
        "source": r.source,
        "kind": "function",
        "dialect": r.dialect,
        "name": r.function.name if r.function else None,
        "valid": r.ok,
        "problems": [p.to_dict() for p in r.problems],
    }


def _agent_json(r: AgentReport) -> dict[str, Any]:
    return {
        "source": r.source,
        "kind": "agent",
        "name": r.agent.name if r.agent else None,
        "valid": r.ok,
        "problems": [p.to_dict() for p in r.problems],
        "functions": [
            {**_report_json(report), "index": entry.index}
            for entry in r.functions
            for report in entry.reports
        ],
    }


def _print_report(r: Report, indent: str = "") -> None:
    if r.ok:
        assert r.function is not None
        out.print(
            f"{indent}[green]ok[/green] {escape(r.source or '')}: {r.function.name} ({r.dialect})"
        )
    else:
        out.print(f"{indent}[red]invalid[/red] {escape(r.source or '')}: {len(r.errors)} error(s)")
    for p in r.problems:
        out.print(problem_line(p, indent + "  "))


def _print_agent(r: AgentReport) -> None:
    count = sum(len(e.reports) for e in r.functions)
    if r.ok:
        assert r.agent is not None
        out.print(
            f"[green]ok[/green] {escape(r.source or '')}: agent {escape(r.agent.name)} "
            f"({count} function{'s' if count != 1 else ''})"
        )
    else:
        out.print(f"[red]invalid[/red] {escape(r.source or '')}: agent, {len(r.errors)} error(s)")
    for p in r.problems:
        out.print(problem_line(p))
    for entry in r.functions:
        for report in entry.reports:
            _print_report(report, "  ")


@app.command("validate")
def validate_cmd(
    files: Annotated[
        list[Path],
        typer.Argument(help="Function files (JSON, YAML, .py, .js; any dialect) or agent files."),
    ],
    var: VarOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check function and agent files (an agent: every function in it too).

    Exit 0 when all are valid (warnings allowed), 1 with every problem listed.
    """
    from ..dialects import Report, is_agent_document, read_file
    from ..validation import FunctionValidationError

    variables = list(parse_vars(var))
    results: list[Report | AgentReport] = []
    for f in files:
        try:
            is_agent = is_agent_document(read_file(f))
        except (FunctionValidationError, OSError):
            is_agent = False  # reported below, as the function file it may be
        if is_agent:
            from ..runtime.agent import validate_agent

            results.append(validate_agent(f, variables=variables))
        else:
            results.extend(function_reports(f, variables))
    if as_json:
        print_json([_report_json(r) if isinstance(r, Report) else _agent_json(r) for r in results])
    else:
        for r in results:
            if isinstance(r, Report):
                _print_report(r)
            else:
                _print_agent(r)
    raise typer.Exit(EXIT_OK if all(r.ok for r in results) else EXIT_INVALID)


@app.command("convert")
def convert_cmd(
    file: Annotated[Path, typer.Argument(help="A function file in any loadable dialect.")],
    to: Annotated[str, typer.Option("--to", help="Target: " + ", ".join(DIALECT_NAMES))],
    var: VarOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a function in another dialect (LLM dialects show exactly what the LLM sees).

    The document goes to stdout, warnings to stderr; with --json: {"ok", "output", "warnings"}.
    """
    from ..dialects import dump

    check_dialect(to)
    values = parse_vars(var)
    report = load_one(file, list(values), as_json=as_json)
    assert report.function is not None
    try:
        doc, lost = dump(report.function, to, context=context_from(var) if var else None)
    except ValueError as exc:
        fail(str(exc), as_json=as_json, source=str(file))
    warnings = [f"{to} cannot carry {what}; dropped" for what in lost]
    if as_json:
        print_json(
            {
                "ok": True,
                "dialect": to,
                "output": doc,
                "warnings": [*warnings, *(str(p) for p in report.warnings)],
            }
        )
        return
    for w in warnings:
        warn(w)
    print_json(doc)


@app.command("from-curl")
def from_curl_cmd(
    command: Annotated[
        str, typer.Argument(help="The cURL command, quoted; '-' reads it from stdin.")
    ],
    to: Annotated[str, typer.Option("--to", help="Output dialect.")] = "bolna",
    name: Annotated[str | None, typer.Option("--name", help="The function's name.")] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out-dir",
            help="Write each function to DIR/<name>.json instead of printing (for pastes "
            "with several requests).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Turn a cURL command (from API docs, Postman or devtools) into a function.

    One request prints one function document; a paste with several requests (--next, several
    URLs or commands) prints a JSON list of them, one function per request (or writes them to
    --out-dir). Each still needs its description written: validate warns until it is.
    """
    from ..dialects import dump
    from ..dialects.curl import CurlParseError, from_curl_all

    check_dialect(to)
    text = sys.stdin.read() if command == "-" else command
    try:
        imported = from_curl_all(text, name=name)
    except CurlParseError as exc:
        fail(str(exc), as_json=as_json, kind="invalid_curl")
    docs: list[dict[str, Any]] = []
    warnings: list[str] = []
    several = len(imported) > 1
    for item in imported:
        where = f"{item.function.name}: " if several else ""
        warnings += [f"{where}{w}" for w in item.warnings]
        doc, lost = dump(item.function, to)
        warnings += [f"{where}{to} cannot carry {what}; dropped" for what in lost]
        docs.append(doc)
    written: list[str] = []
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for item, doc in zip(imported, docs, strict=True):
            target = out_dir / f"{item.function.name}.json"
            target.write_text(
                json.dumps(doc, indent=2, ensure_ascii=False) + "\n",
                encoding="utf-8",
            )
            written.append(str(target))
    if as_json:
        print_json({"ok": True, "functions": docs, "written": written, "warnings": warnings})
        return
    for w in warnings:
        warn(w)
    if several and out_dir is None:
        err.print(
            f"[yellow]note[/yellow]: the paste makes {len(docs)} requests: a list of "
            f"{len(docs)} functions follows (--out-dir DIR writes one file each)"
        )
    if out_dir is not None:
        for path in written:
            out.print(f"wrote {escape(path)}")
        return
    print_json(docs if several else docs[0])
