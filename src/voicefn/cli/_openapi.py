"""``from-openapi``: functions from an OpenAPI 3.0/3.1 or Swagger 2.0 document, one per operation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ._app import (
    DIALECT_NAMES,
    EXIT_INVALID,
    EXIT_OK,
    JsonOpt,
    app,
    check_dialect,
    err,
    escape,
    fail,
    out,
    print_json,
    warn,
)


@app.command("from-openapi")
def from_openapi_cmd(
    spec: Annotated[Path, typer.Argument(help="The OpenAPI/Swagger document (JSON or YAML).")],
    operations: Annotated[
        list[str] | None,
        typer.Option(
            "--operations",
            "-o",
            help="Only these operations: operationId or 'GET /path' (repeatable, or "
            "comma-separated). Default: all.",
        ),
    ] = None,
    to: Annotated[str, typer.Option("--to", help="Output dialect.")] = "voicefn",
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="The API's base URL, instead of the document's server."),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out-dir", help="Write each function to DIR/<name>.json."),
    ] = None,
    list_only: Annotated[
        bool, typer.Option("--list", help="List the operations (id, method, path) and stop.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Turn an OpenAPI 3.0/3.1 or Swagger 2.0 document into functions, one per operation.

    Prints a JSON list (or writes --out-dir). Warnings name what could not be mapped: header
    parameters, file uploads, nested form fields, credentials to set as context variables.
    """
    from ..dialects import dump
    from ..dialects.openapi import OpenAPIError, from_openapi, list_operations, load_document

    check_dialect(to, DIALECT_NAMES)
    wanted = [w.strip() for item in operations or [] for w in item.split(",") if w.strip()]
    try:
        if list_only:
            ops = list_operations(load_document(spec))
            rows = [
                {
                    "operation_id": o.operation_id,
                    "method": o.method.upper(),
                    "path": o.path,
                    "summary": o.summary,
                }
                for o in ops
            ]
            if as_json:
                print_json({"ok": True, "operations": rows})
            else:
                for o in ops:
                    out.print(
                        f"{escape(o.operation_id or '-')}  {o.method.upper()} {escape(o.path)}  "
                        f"[dim]{escape(o.summary)}[/dim]"
                    )
            raise typer.Exit(EXIT_OK)
        result = from_openapi(spec, operations=wanted, base_url=base_url)
    except OSError as exc:
        fail(f"cannot read {spec}: {exc.strerror or exc}", as_json=as_json, source=str(spec))
    except OpenAPIError as exc:
        fail(str(exc), as_json=as_json, source=str(spec), kind="invalid_openapi")
    docs: list[dict[str, Any]] = []
    warnings = list(result.warnings)
    for item in result.functions:
        where = f"{item.function.name} ({item.operation.label})"
        warnings += [f"{where}: {w}" for w in item.warnings]
        try:
            doc, lost = dump(item.function, to)
        except ValueError as exc:
            fail(str(exc), as_json=as_json, source=str(spec))
        warnings += [f"{where}: {to} cannot carry {what}; dropped" for what in lost]
        docs.append(doc)
    skipped = [
        {
            "operation": op.operation_id or op.label,
            "method": op.method.upper(),
            "path": op.path,
            "why": why,
        }
        for op, why in result.skipped
    ]
    written: list[str] = []
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for doc in docs:
            target = out_dir / f"{doc.get('name', 'function')}.json"
            target.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", "utf-8")
            written.append(str(target))
    if as_json:
        print_json(
            {
                "ok": bool(docs),
                "title": result.title,
                "version": result.version,
                "functions": docs,
                "skipped": skipped,
                "warnings": warnings,
                "written": written,
            }
        )
        raise typer.Exit(EXIT_OK if docs else EXIT_INVALID)
    for w in warnings:
        warn(w)
    for s in skipped:
        err.print(f"[yellow]skipped[/yellow] {escape(s['operation'])}: {escape(s['why'])}")
    if not docs:
        fail("no operation could be turned into a function", as_json=False, source=str(spec))
    err.print(
        f"[dim]{len(docs)} function(s) from {escape(result.title or spec.name)} "
        f"(OpenAPI {result.version}); write when to call each into its description[/dim]"
    )
    if out_dir is not None:
        for path in written:
            out.print(f"wrote {escape(path)}")
        return
    print_json(docs)
