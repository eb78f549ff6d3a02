"""``from_openapi``: every chosen operation converted and validated, names made unique, the
warnings gathered for a person to read."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ...spec import Function
from ...validation import did_you_mean, validate_document
from .convert import convert_operation
from .document import (
    OpenAPIError,
    Operation,
    Skip,
    document_version,
    list_operations,
    load_document,
    server_base_url,
)
from .refs import external_refs


@dataclass
class ImportedOperation:
    """A function made from one operation, and what of the operation it could not carry."""

    operation: Operation
    function: Function
    warnings: list[str] = field(default_factory=list)


@dataclass
class OpenAPIImport:
    """Every function the document gave, the operations it could not map and why, and the
    warnings about the document as a whole."""

    title: str
    version: str
    functions: list[ImportedOperation] = field(default_factory=list)
    skipped: list[tuple[Operation, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _select(
    operations: list[Operation], wanted: Sequence[str]
) -> tuple[list[Operation], list[str]]:
    """The operations ``wanted`` names (operationId or ``METHOD /path``), and the unknown ones."""
    if not wanted:
        return operations, []
    by_key: dict[str, Operation] = {}
    for op in operations:
        by_key[op.label.lower()] = op
        if op.operation_id:
            by_key[op.operation_id.lower()] = op
    chosen: list[Operation] = []
    unknown: list[str] = []
    for raw in wanted:
        found = by_key.get(" ".join(raw.split()).lower())
        if found is None:
            unknown.append(raw)
        elif found not in chosen:
            chosen.append(found)
    return chosen, unknown


def from_openapi(
    source: Mapping[str, Any] | str | Path,
    *,
    operations: Sequence[str] = (),
    base_url: str | None = None,
) -> OpenAPIImport:
    """Functions from an OpenAPI 3.0/3.1 or Swagger 2.0 document (see the module docstring).

    ``operations`` picks some (``operationId`` or ``"GET /pets/{petId}"``); an unknown one raises
    :class:`OpenAPIError` with a did-you-mean. ``base_url`` replaces the document's server.
    """
    doc = load_document(source)
    version = document_version(doc)
    info = doc.get("info")
    title = info.get("title") if isinstance(info, dict) else None
    result = OpenAPIImport(str(title or ""), version)
    if base_url is not None:
        try:
            parsed = httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            raise OpenAPIError(f"--base-url {base_url!r} is not a URL: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise OpenAPIError(f"--base-url {base_url!r} must be an absolute http(s) URL")
    all_ops = list_operations(doc)
    chosen, unknown = _select(all_ops, operations)
    if unknown:
        names = [o.operation_id or o.label for o in all_ops]
        hints = []
        for u in unknown:
            hint = did_you_mean(u, names)
            hints.append(f"{u!r}" + (f" (did you mean {hint!r}?)" if hint else ""))
        raise OpenAPIError(f"no operation {', '.join(hints)} in the document")
    base = server_base_url(doc, version, base_url, result.warnings) if chosen else ""
    external = sorted(external_refs(doc.get("paths") or {}, set()))
    if external:
        result.warnings.append(
            f"external references are not followed ({', '.join(external[:5])}"
            + (", ..." if len(external) > 5 else "")
            + "): what they point to is read as a plain object"
        )
    if doc.get("webhooks"):
        result.warnings.append(
            f"{len(doc['webhooks'])} webhook(s) are requests the API sends, not operations to call: not mapped"
        )
    if not all_ops:
        result.warnings.append("the document has no operations (no paths)")
    taken: set[str] = set()
    for op in chosen:
        try:
            doc_out, warnings, variables = convert_operation(
                op, doc, version, base, base_url is not None
            )
        except Skip as exc:
            result.skipped.append((op, str(exc)))
            continue
        name, n = doc_out["name"], 2
        while name in taken:
            name = f"{doc_out['name'][:60]}_{n}"
            n += 1
        if name != doc_out["name"]:
            warnings.append(
                f"the name {doc_out['name']!r} is taken by another operation: it is {name!r}"
            )
            doc_out["name"] = name
        taken.add(name)
        function, problems = validate_document(doc_out, variables=variables)
        if function is None:
            errors = "; ".join(str(p) for p in problems if p.severity == "error")
            result.skipped.append((op, f"the function it makes is not valid: {errors}"))
            continue
        undescribed = [
            p.path.split(".")[-2]
            for p in problems
            if p.severity == "warning" and p.message == "parameter has no description"
        ]
        if undescribed:
            warnings.append(
                "parameters without a description (the LLM reads only their names): "
                + ", ".join(undescribed)
            )
        warnings += [
            str(p)
            for p in problems
            if p.severity == "warning"
            and p.message != "parameter has no description"
            and "is not a system variable" not in p.message  # said with the security notes
            and "TODO" not in p.message  # said above
        ]
        result.functions.append(ImportedOperation(op, function, warnings))
    return result


def summary_lines(result: OpenAPIImport) -> Iterable[str]:
    """What a person should read after an import: document notes, then per operation."""
    yield from result.warnings
    for imported in result.functions:
        for w in imported.warnings:
            yield f"{imported.function.name} ({imported.operation.label}): {w}"
    for op, why in result.skipped:
        yield f"skipped {op.operation_id or op.label} ({op.label}): {why}"
