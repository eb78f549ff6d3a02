"""The parts of a curl request that carry data: shell variables, forms, JSON and multipart bodies.

Used by :mod:`voicefn.dialects.curl`. A value that holds a shell expansion (``$TOKEN``) becomes a
``{context_variable}`` placeholder and stays fixed in ``param``; every other example value becomes
a parameter the LLM fills. A key given several times keeps all its values, as a list.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote_plus

from ..context import SYSTEM_VARIABLES
from .curl_args import CurlParseError, CurlRequest, FormPart, last_header
from .curl_shell import marked, restore, substitute

__all__ = ["Fixed", "ShellNames", "body_fields", "content_kind", "form_fields", "parse_form"]

_LITERAL_VAR_RE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Fixed:
    """A value that stays literally in ``param`` (not a parameter)."""

    value: Any


@dataclass
class ShellNames:
    """The context variable each shell expansion of the paste becomes, and where it was used."""

    req: CurlRequest
    names: dict[int, str] = field(default_factory=dict)
    used: dict[str, list[str]] = field(default_factory=dict)  # name -> where
    notes: dict[str, str] = field(default_factory=dict)  # name -> how it came to be

    def __post_init__(self) -> None:
        by_text: dict[str, str] = {}
        for k, var in enumerate(self.req.shell_vars):
            if var.text in by_text:
                self.names[k] = by_text[var.text]
                continue
            name = var.name
            if name in SYSTEM_VARIABLES:
                name = f"target_{name}"
            base, n = name, 2
            while name in self.names.values():
                name, n = f"{base}_{n}", n + 1
            self.names[k] = by_text[var.text] = name

    def taken(self) -> set[str]:
        return set(self.names.values()) | set(self.notes)

    def sub(self, text: str, where: str, *, literal_dollars: bool = False) -> str:
        """``text`` with its expansions as ``{name}``; ``literal_dollars`` also takes a
        ``$NAME`` the shell left alone (in single quotes), where it cannot be meant literally."""
        if literal_dollars and "$" in text:
            text = _LITERAL_VAR_RE.sub(lambda m: self._literal(m.group(0), m), text)
        for k in marked(text):
            self.used.setdefault(self.names[k], [])
            if where not in self.used[self.names[k]]:
                self.used[self.names[k]].append(where)
        return substitute(text, self.names)

    def _literal(self, text: str, m: re.Match[str]) -> str:
        from .curl_shell import ShellVar, snake

        wanted = snake(m.group(1) or m.group(2)) or "value"
        self.req.shell_vars.append(ShellVar(text, wanted, False))
        k = len(self.req.shell_vars) - 1
        existing = next(
            (n for j, n in self.names.items() if self.req.shell_vars[j].text == text), None
        )
        name = existing or (f"target_{wanted}" if wanted in SYSTEM_VARIABLES else wanted)
        base, n = name, 2
        while existing is None and name in self.names.values():
            name, n = f"{base}_{n}", n + 1
        self.names[k] = name
        return f"\x00{k}\x00"

    def add(self, name: str, where: str, note: str) -> str:
        """A context variable the converter needs that is no shell expansion."""
        self.notes[name] = note
        self.used.setdefault(name, []).append(where)
        return name

    def warnings(self) -> list[str]:
        out: list[str] = []
        how = (
            "set it for every call (--var {n}=... with voicefn invoke or call, under variables: "
            "in the agent file, or CallContext(variables={{'{n}': ...}}) in Python)"
        )
        for name, where in self.used.items():
            if name in self.notes:
                out.append(f"{self.notes[name]}; {how.format(n=name)}")
                continue
            texts = [self.req.shell_vars[k] for k, n in self.names.items() if n == name]
            var = texts[0]
            said = f"{var.text} ({', '.join(where)})"
            if var.command:
                msg = f"{said} runs a command, which a function cannot: it became the context variable {{{name}}}, whose value is that command's output"
            else:
                msg = f"the shell variable {said} became the context variable {{{name}}}"
            if name.startswith("target_") and name[7:] in SYSTEM_VARIABLES:
                msg += f" (not {{{name[7:]}}}: that system variable is filled with this call's own {name[7:]}; write {{{name[7:]}}} if that is what you meant)"
            if var.default is not None:
                msg += f" (the command's default is {var.default!r})"
            out.append(f"{msg}; {how.format(n=name)}")
        return out


# ------------------------------------------------------------------------------- forms


def _group(pairs: list[tuple[str, Any]], where: str, req: CurlRequest) -> list[tuple[str, Any]]:
    """Merge repeated keys into one list value, in the order of their first use."""
    grouped: dict[str, list[Any]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    out: list[tuple[str, Any]] = []
    for key, values in grouped.items():
        if len(values) == 1:
            out.append((key, values[0]))
            continue
        req.warn(
            f"{where} field {key!r} is given {len(values)} times: its values are kept as a list, sent as repeated {key}= fields"
        )
        if any(isinstance(v, Fixed) for v in values):
            out.append((key, Fixed([v.value if isinstance(v, Fixed) else v for v in values])))
        else:
            out.append((key, values))
    return out


def _value(text: str, where: str, key: str, names: ShellNames) -> Any:
    return Fixed(names.sub(text, f"{where} field {key}")) if marked(text) else text


def _key(text: str, where: str, req: CurlRequest) -> str:
    if marked(text):
        text = restore(text, req.shell_vars)
        req.warn(f"{where} field name {text!r} holds a shell variable: it is kept as written")
    return text


def parse_form(text: str, where: str, names: ShellNames) -> list[tuple[str, Any]]:
    """``a=1&b=2&b=3`` -> ``[("a", "1"), ("b", ["2", "3"])]``; shell variables stay fixed."""
    req = names.req
    pairs: list[tuple[str, Any]] = []
    for part in text.split("&"):
        if not part:
            continue
        raw_key, sep, raw_value = part.partition("=")
        key, value = _key(unquote_plus(raw_key), where, req), unquote_plus(raw_value)
        if not key:
            req.warn(f"ignored {where} part {part!r}: it has no field name")
            continue
        if not sep:
            req.warn(f"{where} part {part!r} has no value: it is kept as the fixed field {key}=")
            pairs.append((key, Fixed("")))
            continue
        if "+" in raw_value:
            req.warn(
                f"{where} field {key!r}: '+' in {raw_value!r} is sent as a space; write %2B for a literal plus (e.g. a phone number)"
            )
        pairs.append((key, _value(value, where, key, names)))
    return _group(pairs, where, req)


def form_fields(parts: list[FormPart], names: ShellNames) -> list[tuple[str, Any]]:
    """The text fields of ``-F``; a file field is refused (a function sends no files)."""
    req = names.req
    files = [p for p in parts if p.file is not None]
    if files:
        shown = ", ".join(repr(restore(p.written, req.shell_vars)) for p in files)
        raise CurlParseError(
            f"-F {shown} uploads a file, which a function cannot send: a function sends text "
            "fields only (its values come from the LLM or the call); remove the file field, "
            "or send the file's text as a -F name=value field"
        )
    pairs: list[tuple[str, Any]] = []
    for p in parts:
        key = _key(p.name, "multipart", req)
        if p.content_type and p.content_type.lower() != "text/plain":
            req.warn(
                f"multipart field {key!r} has type={p.content_type}: the part is sent as text, without its own Content-Type"
            )
        pairs.append((key, _value(p.value, "multipart", key, names)))
    return _group(pairs, "multipart", req)


def multipart_fields(body: str, content_type: str, names: ShellNames) -> list[tuple[str, Any]]:
    """The text fields of a raw multipart/form-data body (a browser's "Copy as cURL")."""
    m = re.search(r'boundary="?([^";]+)"?', content_type, re.I)
    if m is None:
        raise CurlParseError(
            "the body is multipart/form-data but the Content-Type names no boundary; paste the command as the browser copied it"
        )
    parts: list[FormPart] = []
    for chunk in body.split("--" + m.group(1))[1:]:
        if chunk.startswith("--"):
            break
        head, _, value = chunk.lstrip("\r\n").partition("\r\n\r\n")
        if not _:
            head, _, value = chunk.lstrip("\n").partition("\n\n")
        disposition = re.search(r'content-disposition:[^\r\n]*\bname="([^"]*)"', head, re.I)
        if disposition is None:
            continue
        filename = re.search(r'\bfilename="?([^";\r\n]*)', head, re.I)
        ctype = re.search(r"content-type:\s*([^\r\n]+)", head, re.I)
        value = value.removesuffix("\r\n").removesuffix("\n")
        written = f"{disposition.group(1)}=" + (f"@{filename.group(1)}" if filename else value)
        parts.append(
            FormPart(
                disposition.group(1),
                value,
                filename.group(1) or "(unnamed)" if filename else None,
                ctype.group(1).strip() if ctype else None,
                written,
            )
        )
    return form_fields(parts, names)


# ------------------------------------------------------------------------------- bodies


def content_kind(content_type: str | None) -> str | None:
    if content_type is None:
        return None
    base = content_type.split(";")[0].strip().lower()
    if base == "application/json" or re.fullmatch(r"application/[\w.+-]*\+json", base):
        return "json"
    if base == "application/x-www-form-urlencoded":
        return "form"
    if base == "multipart/form-data":
        return "multipart"
    return "other"


def _json_with_marks(text: str) -> str:
    """Quote shell expansions that stand outside JSON strings (``{"n": $N}``)."""
    out: list[str] = []
    in_string = escaped = False
    for part in re.split("(\x00\\d+\x00)", text):
        if marked(part):  # as JSON escapes: a raw NUL is not allowed in a JSON string
            escaped_mark = "\\u0000" + part[1:-1] + "\\u0000"
            out.append(escaped_mark if in_string else f'"{escaped_mark}"')
            continue
        for c in part:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = in_string
            elif c == '"':
                in_string = not in_string
        out.append(part)
    return "".join(out)


def _has_marks(value: Any) -> bool:
    if isinstance(value, str):
        return bool(marked(value))
    if isinstance(value, dict):
        return any(_has_marks(v) or _has_marks(k) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_marks(v) for v in value)
    return False


def _sub_all(value: Any, where: str, names: ShellNames) -> Any:
    if isinstance(value, str):
        return names.sub(value, where)
    if isinstance(value, dict):
        return {
            restore(k, names.req.shell_vars): _sub_all(v, where, names) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_sub_all(v, where, names) for v in value]
    return value


def parse_json(body: str, names: ShellNames) -> Any:
    """The JSON body, with a warning for keys given twice; CurlParseError when invalid."""
    req = names.req

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for k, v in pairs:
            if k in seen:
                req.warn(
                    f"JSON field {k!r} is given more than once in one object: JSON keeps only the last value"
                )
            seen[k] = v
        return seen

    try:
        return json.loads(_json_with_marks(body), object_pairs_hook=pairs_hook)
    except ValueError as exc:
        detail = (
            f"{exc.msg} at line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else str(exc)
        )
        raise CurlParseError(
            f"the body is not valid JSON ({detail}); fix the JSON, or remove the JSON Content-Type header if it is a form"
        ) from None


def body_fields(
    body: str, headers: list[tuple[str, str]], names: ShellNames, where: str
) -> tuple[Fixed | None, list[tuple[str, Any]]]:
    """``(fixed body or None, fields)`` of a request body; may add a Content-Type header."""
    req = names.req
    content_type = last_header(headers, "content-type")
    kind = content_kind(content_type)
    if kind is None:
        try:
            probe = parse_json(body, names) if body.strip()[:1] in ("{", "[") else None
        except CurlParseError:
            probe = None
        if probe is not None:
            kind = "json"
            headers.append(("Content-Type", "application/json"))
            req.warn(
                "the body is JSON but the command sets no Content-Type (curl would send it as a form): added Content-Type: application/json"
            )
        else:
            kind = "form"
            if where == "body":
                headers.append(("Content-Type", "application/x-www-form-urlencoded"))
                req.warn(
                    "added Content-Type: application/x-www-form-urlencoded (curl's default for -d) so the function sends a form body too"
                )
    if kind == "multipart" and where == "body" and content_type is not None:
        return None, multipart_fields(body, content_type, names)
    if kind in ("other", "multipart"):
        raise CurlParseError(
            f"the body has Content-Type {content_type!r}, which a function cannot send: it sends JSON (application/json), form (application/x-www-form-urlencoded) or -F multipart text fields; convert the request or change the header"
        )
    if kind == "form":
        return None, parse_form(body, where, names)
    if not body.strip():
        return None, []
    data = parse_json(body, names)
    if not isinstance(data, dict):
        kind_name = {list: "array", str: "string", bool: "boolean"}.get(type(data), "number")
        req.warn(
            f"the JSON body is a {'null' if data is None else kind_name}, not an object: it is kept as a fixed param and the LLM fills nothing in it; add %(name)s placeholders by hand"
        )
        return Fixed(_sub_all(data, "JSON body", names)), []
    fields: list[tuple[str, Any]] = []
    for key, value in data.items():
        shown = restore(key, req.shell_vars)
        if _has_marks(value) or _has_marks(key):
            fields.append((shown, Fixed(_sub_all(value, f"JSON field {shown}", names))))
        else:
            fields.append((key, value))
    return None, fields
