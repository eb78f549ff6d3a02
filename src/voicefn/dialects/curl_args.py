"""Read a pasted curl command line into :class:`CurlRequest` objects: what curl would send.

The paste is split into commands and words by :mod:`voicefn.dialects.curl_shell`. Every curl
command is read option by option against curl's option table: those that shape the request
(method, headers, body, form fields, upload, credentials, URL, timeout) are recorded, the others
are ignored with a warning that says why. ``--next`` starts a new request, as in curl, and so does
every further URL (curl fetches each one) and every further curl command in the paste.
:mod:`voicefn.dialects.curl` turns each request into a function.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Final, NamedTuple
from urllib.parse import quote

from ..spec import DEFAULT_TIMEOUT_MS, HTTP_METHODS, MAX_TIMEOUT_MS
from .curl_shell import EXAMPLE, CurlParseError, ShellVar, marked, restore, split_commands

__all__ = [
    "EXAMPLE",
    "CurlParseError",
    "CurlRequest",
    "FormPart",
    "last_header",
    "parse_curl",
    "parse_curl_all",
]

# ------------------------------------------------------------------------------- options


class _Opt(NamedTuple):
    short: str | None
    long: str
    takes_arg: bool
    kind: str

    @property
    def display(self) -> str:
        return f"-{self.short}/--{self.long}" if self.short else f"--{self.long}"


#: curl's options by what the converter does with them: "kind, takes an argument: names", each
#: name written "<short> <long>" or "<long>".
_OPTION_TABLE: Final = {
    ("request", True): "X request",
    ("header", True): "H header",
    ("data", True): "d data, data-ascii, data-binary",
    ("data-raw", True): "data-raw",
    ("data-urlencode", True): "data-urlencode",
    ("json", True): "json",
    ("get", False): "G get",
    ("user", True): "u user",
    ("bearer", True): "oauth2-bearer",
    ("user-agent", True): "A user-agent",
    ("referer", True): "e referer",
    ("cookie", True): "b cookie",
    ("url", True): "url",
    ("url-query", True): "url-query",
    ("max-time", True): "m max-time",
    ("form", True): "F form, form-string",
    ("upload", True): "T upload-file",
    ("head", False): "I head",
    ("next", False): ": next",
    ("location", False): "L location, location-trusted",
    ("compressed", False): "compressed",
    ("insecure", False): "k insecure",
    ("basic", False): "basic",
    ("connect-timeout", True): "connect-timeout",
    ("auth-scheme", False): "digest, ntlm, negotiate, anyauth",
    ("output", False): (
        "s silent, S show-error, i include, v verbose, O remote-name, # progress-bar, "
        "no-progress-meter, f fail, fail-with-body, N no-buffer, J remote-header-name, "
        "R remote-time, create-dirs, styled-output"
    ),
    ("output", True): (
        "o output, w write-out, D dump-header, trace, trace-ascii, stderr, output-dir, "
        "c cookie-jar, etag-save"
    ),
    ("unsupported", True): (
        "x proxy, U proxy-user, E cert, key, cacert, capath, retry, retry-delay, retry-max-time, "
        "max-redirs, resolve, connect-to, r range, limit-rate, K config, interface, z time-cond, "
        "proxy-header, aws-sigv4, cert-type, key-type, pass, ciphers, tls-max, noproxy, "
        "unix-socket, request-target, expect100-timeout, keepalive-time, dns-servers, variable, "
        "y speed-time, Y speed-limit, C continue-at, max-filesize, proto, proto-redir, socks5, "
        "socks5-hostname, preproxy, hsts, alt-svc, doh-url, Q quote, P ftp-port, "
        "t telnet-option, pinnedpubkey, crlfile, local-port, netrc-file, etag-compare, "
        "happy-eyeballs-timeout-ms, rate, parallel-max"
    ),
    ("unsupported", False): (
        "0 http1.0, http1.1, http2, http2-prior-knowledge, http3, 4 ipv4, 6 ipv6, 1 tlsv1, "
        "tlsv1.2, tlsv1.3, 2 sslv2, 3 sslv3, n netrc, netrc-optional, g globoff, path-as-is, "
        "raw, tcp-nodelay, no-keepalive, no-sessionid, ssl, ssl-reqd, cert-status, "
        "tr-encoding, post301, post302, post303, j junk-session-cookies, p proxytunnel, "
        "Z parallel, retry-all-errors, retry-connrefused, no-alpn, no-npn, B use-ascii, "
        "a append, q disable"
    ),
}
_OPTIONS: Final = [
    _Opt(short or None, long, takes_arg, kind)
    for (kind, takes_arg), names in _OPTION_TABLE.items()
    for short, _, long in (n.strip().rpartition(" ") for n in names.split(","))
]
_SHORT: Final = {o.short: o for o in _OPTIONS if o.short}
_LONG: Final = {o.long: o for o in _OPTIONS}
_STDIN: Final = "\x1fstdin"  # a -d @- part, filled from a here-string or here-document
_OUTPUT_REDIRECT_RE: Final = re.compile(r"^(\d?>>?|&>>?)(.*)$")

# ------------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class FormPart:
    """One ``-F/--form`` field: text, or a file (``@file`` uploads it, ``<file`` reads its text)."""

    name: str
    value: str
    file: str | None  # the file a file field names
    content_type: str | None  # ;type=...
    written: str  # the argument as written, for messages


@dataclass
class CurlRequest:
    """What a curl command asks for, and warnings about what of it a function cannot use."""

    warnings: list[str] = field(default_factory=list)
    shell_vars: list[ShellVar] = field(default_factory=list)  # shared by the whole paste
    explicit_method: str | None = None  # -X/--request
    urls: list[str] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    json_parts: list[str] = field(default_factory=list)
    has_data: bool = False
    get: bool = False
    form_parts: list[FormPart] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)  # -T, the n-th for the n-th URL
    user: str | None = None
    bearer: str | None = None
    cookies: list[str] = field(default_factory=list)
    url_query: list[str] = field(default_factory=list)
    timeout_ms: int | None = None
    stdin: str | None = None  # from <<< or a here-document
    stdin_file: str | None = None  # from < FILE
    label: str = ""  # "request 2 (after --next)": set when the paste makes several requests

    def warn(self, message: str) -> None:
        message = restore(message, self.shell_vars)
        if message not in self.warnings:
            self.warnings.append(message)

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def upload(self) -> str | None:
        return self.uploads[0] if self.uploads else None

    @property
    def form(self) -> bool:
        return bool(self.form_parts)

    @property
    def method(self) -> str:
        """The method curl uses: -X, else PUT for -T, GET for -G, POST with a body, else GET."""
        if self.explicit_method:
            return self.explicit_method
        if self.upload is not None:
            return "PUT"
        if self.get:
            return "GET"
        if self.has_data or self.form:
            return "POST"
        return "GET"

    def sent_headers(self) -> list[tuple[str, str]]:
        """The headers curl sends: -H/-A/-e, a Cookie for -b, and --json's two defaults."""
        headers = list(self.headers)
        if self.cookies:
            headers.append(("Cookie", "; ".join(self.cookies)))
        if self.json_parts:
            if last_header(headers, "content-type") is None:
                headers.append(("Content-Type", "application/json"))
            if last_header(headers, "accept") is None:
                headers.append(("Accept", "application/json"))
        return headers

    @property
    def body(self) -> str:
        """The body curl sends: the -d parts joined with '&', then --json's parts concatenated."""
        if self.json_parts:
            return "&".join([*self.data, "".join(self.json_parts)])
        return "&".join(self.data)


def last_header(headers: list[tuple[str, str]], name: str) -> str | None:
    """The value of the last header called ``name`` (lower case), or None."""
    values = [v for h, v in headers if h.lower() == name]
    return values[-1] if values else None


def parse_curl(command: str) -> CurlRequest:
    """Read a curl command that makes one request; :class:`CurlParseError` otherwise."""
    requests = parse_curl_all(command)
    if len(requests) > 1:
        raise CurlParseError(several_requests(requests))
    return requests[0]


def several_requests(requests: list[CurlRequest]) -> str:
    listed = "; ".join(f"{r.label}: {r.method} {restore(r.url, r.shell_vars)}" for r in requests)
    return (
        f"the command makes {len(requests)} requests ({listed}); a function makes one request: "
        "paste one request at a time"
    )


_URL_LIKE_RE: Final = re.compile(
    r"^([A-Za-z][A-Za-z0-9+.-]*://|(//)?(localhost|[\w-]+(\.[\w-]+)+|\[[0-9a-fA-F:.]+\])(:\d+)?([/?#]|$))"
)


def parse_curl_all(command: str) -> list[CurlRequest]:
    """Every request of a pasted command, in order: one per URL, ``--next`` part and command."""
    commands, shell_vars = split_commands(command)
    notes: list[str] = []
    curls = [c for c in commands if re.fullmatch(r"(.*/)?curl(\.exe)?", c[c[0] in _OPERATORS])]
    if not curls:
        curls = commands[:1]  # no "curl" word: the paste is curl's arguments
    for cmd in commands:
        if not any(cmd is c for c in curls):
            shown = " ".join(restore(w, shell_vars) for w in cmd)
            notes.append(
                f"ignored {shown[:60]!r}: only curl commands are converted"
                if cmd[0] not in _OPERATORS
                else f"ignored everything from {cmd[0]!r} on ({shown[:60]!r}): only the curl "
                "command itself is converted"
            )
    groups: list[CurlRequest] = []
    for k, cmd in enumerate(curls):
        words = cmd[1:] if cmd[0] in _OPERATORS else cmd
        if re.fullmatch(r"(.*/)?curl(\.exe)?", words[0]):
            words = words[1:]
        group = CurlRequest(shell_vars=shell_vars, label=f"command {k + 1}")
        parts = [group]
        _parse_arguments(words, parts)
        for part in parts:
            _read_stdin(part, group)
        groups += parts
    requests: list[CurlRequest] = []
    for group in groups:
        if not group.urls:
            raise CurlParseError(
                f"no URL found in the command; paste a curl command such as: {EXAMPLE}"
            )
        urls = [group.urls[0]]
        for extra in group.urls[1:]:
            if _URL_LIKE_RE.match(extra) and _URL_LIKE_RE.match(urls[0]):
                urls.append(extra)
            else:
                group.warn(f"ignored extra argument {extra!r}: it is not a URL")
        for i, url in enumerate(urls):
            req = copy.copy(group)
            req.warnings = [*group.warnings]
            req.urls = [url]
            req.uploads = group.uploads[i : i + 1]
            requests.append(req)
        if len(group.uploads) > len(urls):
            group.warn(f"ignored -T {group.uploads[len(urls)]!r}: no URL is left to upload it to")
    for req in requests:
        for note in notes:
            req.warn(note)
    if len(requests) > 1:
        for n, req in enumerate(requests, 1):
            req.label = f"request {n}"
    return requests


_OPERATORS: Final = frozenset({"|", "||", "&&", ";", "&"})


def _read_stdin(req: CurlRequest, group: CurlRequest) -> None:
    """Fill the -d @- parts from the command's here-string, or drop them with a warning."""
    req.stdin, req.stdin_file = group.stdin, group.stdin_file
    for parts in (req.data, req.json_parts):
        for i, part in enumerate(parts):
            if part.startswith(_STDIN):
                binary = part == _STDIN + "binary"
                if req.stdin is not None:
                    text = req.stdin
                    parts[i] = text if binary else text.replace("\r", "").replace("\n", "")
                else:
                    where = f"the file {req.stdin_file}" if req.stdin_file else "standard input"
                    req.warn(
                        f"ignored @-: the body is read from {where}, which the converter cannot "
                        "see; write its fields into param by hand"
                    )
                    parts[i] = ""


def _quote(text: str) -> str:
    """Percent-encode, keeping shell-expansion markers whole."""
    pieces = re.split("(\x00\\d+\x00)", text)
    return "".join(p if marked(p) else quote(p, safe="") for p in pieces)


def _encode_urlencode_arg(arg: str, flag: str, req: CurlRequest) -> str | None:
    """``--data-urlencode``: ``content``, ``=content``, ``name=content``; ``[name]@file`` is
    a file we cannot read."""
    m = re.match(r"^([^=@]*)([=@])(.*)$", arg, re.S)
    if m is None:
        return _quote(arg)
    name, sep, content = m.groups()
    if sep == "@":
        req.warn(
            f"ignored {flag} {arg!r}: it reads a file, which the converter cannot see; add the field to param by hand"
        )
        return None
    return f"{name}={_quote(content)}" if name else _quote(content)


def _apply(opt: _Opt, arg: str | None, req: CurlRequest) -> None:
    flag, kind, value = opt.display, opt.kind, arg or ""
    if kind == "request":
        req.explicit_method = value.strip().upper()
    elif kind == "header":
        if value.startswith("@"):
            req.warn(
                f"ignored {flag} {value!r}: it reads headers from a file, which the converter cannot see"
            )
        else:
            _add_header_line(value, flag, req)
    elif kind in ("data", "data-raw"):
        req.has_data = True
        if kind == "data" and value == "@-":
            req.data.append(_STDIN + ("binary" if opt.long == "data-binary" else ""))
        elif kind == "data" and value.startswith("@"):
            req.warn(
                f"ignored {flag} {value!r}: the body is read from a file, which the converter cannot see; add its fields to param by hand"
            )
        else:
            req.data.append(value)
    elif kind == "data-urlencode":
        req.has_data = True
        encoded = _encode_urlencode_arg(value, flag, req)
        if encoded is not None:
            req.data.append(encoded)
    elif kind == "json":
        req.has_data = True
        if value == "@-":
            req.json_parts.append(_STDIN + "binary")
        elif value.startswith("@"):
            req.warn(
                f"ignored {flag} {value!r}: the body is read from a file, which the converter cannot see"
            )
            req.json_parts.append("")
        else:
            req.json_parts.append(value)
    elif kind == "get":
        req.get = True
    elif kind == "user":
        req.user = value
    elif kind == "bearer":
        req.bearer = value
    elif kind == "user-agent":
        req.headers.append(("User-Agent", value))
    elif kind == "referer":
        req.headers.append(("Referer", value.removesuffix(";auto")))
    elif kind == "cookie":
        if "=" in value:
            req.cookies.append(value)
        else:
            req.warn(
                f"ignored {flag} {value!r}: it names a cookie file, which the converter cannot read"
            )
    elif kind == "url":
        req.urls.append(value)
    elif kind == "url-query":
        encoded = value[1:] if value.startswith("+") else _encode_urlencode_arg(value, flag, req)
        if encoded:
            req.url_query.append(encoded)
    elif kind == "max-time":
        _set_timeout(value, flag, req)
    elif kind == "form":
        req.form_parts.append(_form_part(value, flag, literal=opt.long == "form-string"))
    elif kind == "upload":
        req.uploads.append(value)
    elif kind == "head":
        raise CurlParseError(
            f"{flag} makes a HEAD request, which a function cannot make; remove it (functions use {', '.join(HTTP_METHODS)})"
        )
    else:
        req.warn(_OPTION_NOTES[kind].format(flag=flag, arg=value))


_OPTION_NOTES: Final = {
    "location": "{flag}: honoured: voicefn follows redirects, and its egress policy checks every hop",
    "compressed": "ignored {flag}: not needed, voicefn's HTTP client negotiates compression itself",
    "insecure": "ignored {flag}: TLS verification cannot be turned off for a function",
    "basic": "{flag}: honoured: -u credentials are sent as Basic authentication",
    "connect-timeout": "ignored {flag} {arg}: a function has one overall timeout (timeout_ms); use -m/--max-time to set it",
    "auth-scheme": "ignored {flag}: a function stores Basic (-u) or Bearer credentials only; -u credentials are sent as Basic",
    "output": "ignored {flag}: it only changes what curl prints or saves; a function returns the response to the agent",
    "unsupported": "ignored {flag}: a curl option with no equivalent in a function",
}


_FORM_PARAM_RE: Final = re.compile(r";\s*(type|filename|headers|encoder)=", re.I)


def _form_part(arg: str, flag: str, *, literal: bool) -> FormPart:
    """Read ``name=value``, ``name=@file``, ``name=<file``, ``name="quoted";type=...``."""
    name, eq, rest = arg.partition("=")
    if not eq or not name:
        raise CurlParseError(
            f"{flag} {arg!r} is not a form field; write it as {flag.split('/')[0]} 'name=value'"
        )
    if literal:
        return FormPart(name, rest, None, None, arg)
    params = ""
    if rest.startswith('"'):  # curl reads a quoted value up to its closing quote
        m = re.match(r'"((?:[^"\\]|\\.)*)"(.*)$', rest, re.S)
        if m:
            rest, params = re.sub(r"\\(.)", r"\1", m.group(1)), m.group(2)
    else:
        m = _FORM_PARAM_RE.search(rest)
        if m:
            rest, params = rest[: m.start()], rest[m.start() :]
    type_m = re.search(r";\s*type=([^;]*)", params, re.I)
    content_type = type_m.group(1).strip() if type_m else None
    if rest[:1] in ("@", "<"):
        file = rest[1:].strip('"')
        return FormPart(name, "", file or "-", content_type, arg)
    if re.search(r";\s*filename=", params, re.I):
        return FormPart(name, rest, "(a file name: filename=)", content_type, arg)
    return FormPart(name, rest, None, content_type, arg)


def _set_timeout(value: str, flag: str, req: CurlRequest) -> None:
    try:
        seconds = float(value)
    except ValueError:
        req.warn(
            f"ignored {flag} {value!r}: not a number of seconds; timeout_ms stays {DEFAULT_TIMEOUT_MS}"
        )
        return
    if not seconds > 0:  # also NaN
        req.warn(
            f"ignored {flag} {value}: curl reads it as no limit, a function needs one; timeout_ms stays {DEFAULT_TIMEOUT_MS}"
        )
        return
    ms = round(seconds * 1000) if seconds < 1e9 else MAX_TIMEOUT_MS + 1
    if ms > MAX_TIMEOUT_MS:
        req.warn(f"{flag} {value}: capped at {MAX_TIMEOUT_MS} ms, the longest a function may take")
    req.timeout_ms = min(max(ms, 1), MAX_TIMEOUT_MS)


def _add_header_line(line: str, flag: str, req: CurlRequest) -> None:
    name, sep, value = line.partition(":")
    if not sep:
        if line.endswith(";"):  # curl's way of sending a header with an empty value
            req.headers.append((line[:-1].strip(), ""))
        else:
            req.warn(f"ignored {flag} {line!r}: a header is written 'Name: value'")
        return
    if not value.strip():
        req.warn(f"ignored {flag} {line!r}: 'Name:' with no value removes a header in curl")
        return
    req.headers.append((name.strip(), value.strip()))


def _redirect(tok: str, next_word: str | None, req: CurlRequest) -> int:
    """How many words a shell redirection at ``tok`` takes (0: it is none)."""
    if tok.startswith("<") and tok not in ("<", "<<<"):
        if tok.startswith("<<<"):
            req.stdin = tok[3:] + "\n"
        else:
            req.stdin_file = tok[1:]
        return 1
    if tok in ("<", "<<<"):
        if next_word is None:
            raise CurlParseError(f"{tok} needs a file or text after it, but the command ends there")
        if tok == "<<<":
            req.stdin = next_word + "\n"
        else:
            req.stdin_file = next_word
        return 2
    m = _OUTPUT_REDIRECT_RE.match(tok)
    if m is None or tok == "-":
        return 0
    if re.fullmatch(r"&\d|&-", m.group(2)):
        return 1  # 2>&1
    req.warn(f"ignored the redirection {tok}: it only changes where the shell writes output")
    return 1 if m.group(2) else 2


def _parse_arguments(tokens: list[str], parts: list[CurlRequest]) -> None:
    """Read curl's words into ``parts[-1]``; ``--next`` appends a new request to ``parts``."""
    i, n = 0, len(tokens)
    positional_only = False
    command = parts[0]

    def next_arg(display: str) -> str:
        nonlocal i
        if i >= n:
            raise CurlParseError(f"{display} needs a value, but the command ends there")
        i += 1
        return tokens[i - 1]

    while i < n:
        req = parts[-1]
        tok = tokens[i]
        i += 1
        if not positional_only and (tok.startswith(("<", ">", "&>")) or re.match(r"\d>", tok)):
            used = _redirect(tok, tokens[i] if i < n else None, command)
            if used:
                i += used - 1
                continue
        if positional_only or not tok.startswith("-") or tok == "-":
            req.urls.append(tok)
        elif tok == "--":
            positional_only = True
        elif tok.startswith("--"):
            name, eq, value = tok[2:].partition("=")
            opt = _LONG.get(name)
            if opt is None:
                req.warn(
                    f"ignored unknown option {tok.split('=', 1)[0]}: the converter does not know it; check whether the API needs it"
                )
            elif opt.kind == "next":
                parts.append(CurlRequest(shell_vars=req.shell_vars, label=req.label))
            elif opt.takes_arg:
                _apply(opt, value if eq else next_arg(opt.display), req)
            else:
                _apply(opt, None, req)
        else:
            j = 1
            while j < len(tok):
                ch = tok[j]
                j += 1
                opt = _SHORT.get(ch)
                if opt is None:
                    req.warn(
                        f"ignored unknown option -{ch}: the converter does not know it; check whether the API needs it"
                    )
                elif opt.kind == "next":
                    parts.append(CurlRequest(shell_vars=req.shell_vars, label=req.label))
                    req = parts[-1]
                elif opt.takes_arg:
                    _apply(opt, tok[j:] if j < len(tok) else next_arg(opt.display), req)
                    break
                else:
                    _apply(opt, None, req)
