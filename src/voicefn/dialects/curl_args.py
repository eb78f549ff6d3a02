"""Read a pasted curl command line into a :class:`CurlRequest`: what curl would send, and warnings.

The command is split as bash would (line continuations, ``'...'``, ``"..."`` and ``$'...'``
strings), then every option is looked up in curl's option table: those that shape the request
(method, headers, body, credentials, URL, timeout) are recorded, the others are ignored with a
warning that says why. :mod:`voicefn.dialects.curl` turns the result into a function.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Final, NamedTuple
from urllib.parse import quote

from ..spec import DEFAULT_TIMEOUT_MS, HTTP_METHODS, MAX_TIMEOUT_MS

__all__ = ["EXAMPLE", "CurlParseError", "CurlRequest", "last_header", "parse_curl"]

EXAMPLE: Final = (
    "curl 'https://api.example.com/orders?order_id=ORD-123' -H 'Authorization: Bearer sk_...'"
)


class CurlParseError(ValueError):
    """The command cannot become a function; the message says what is wrong and how to fix it."""


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
_SHELL_OPERATORS: Final = frozenset({"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "2>&1"})

# ------------------------------------------------------------------------------- tokenizing

_ANSI_RE: Final = re.compile(
    r"\\(x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{1,4}|U[0-9a-fA-F]{1,8}|[0-7]{1,3}|c.|.)", re.S
)
_ANSI_SIMPLE: Final = {
    "n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b",
    "f": "\f", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?",
}  # fmt: skip


def _decode_ansi_c(body: str) -> str:
    """The text of a bash ``$'...'`` string; ``\\xHH`` bytes are read as UTF-8, as bash prints."""
    out = bytearray()
    pos = 0
    for m in _ANSI_RE.finditer(body):
        out += body[pos : m.start()].encode("utf-8", "surrogatepass")
        esc = m.group(1)
        if esc[0] == "x" and len(esc) > 1:
            out.append(int(esc[1:], 16))
        elif esc[0] in "uU" and len(esc) > 1:
            out += chr(int(esc[1:], 16)).encode("utf-8", "surrogatepass")
        elif esc[0] in "01234567":
            out.append(int(esc, 8) & 0xFF)
        elif esc[0] == "c" and len(esc) == 2:
            out.append(ord(esc[1]) & 0x1F)
        else:
            out += _ANSI_SIMPLE.get(esc, "\\" + esc).encode("utf-8", "surrogatepass")
        pos = m.end()
    out += body[pos:].encode("utf-8", "surrogatepass")
    return out.decode("utf-8", "replace")


def _prepare(text: str) -> str:
    """Join line continuations and turn ``$'...'`` into plain single quotes, for :mod:`shlex`."""
    out: list[str] = []
    quote_char: str | None = None
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and quote_char != "'":
            if not text.startswith("\n", i + 1):  # a backslash-newline joins two lines
                out.append(text[i : i + 2])
            i += 2
            continue
        if c == "$" and quote_char is None and text.startswith("'", i + 1):
            j = i + 2
            while j < n and text[j] != "'":
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise CurlParseError(
                    "a $'...' string is not closed; paste the whole command, including the "
                    "closing quote"
                )
            decoded = _decode_ansi_c(text[i + 2 : j])
            out.append("'" + decoded.replace("'", "'\"'\"'") + "'")
            i = j + 1
            continue
        if quote_char is None and c in "'\"":
            quote_char = c
        elif c == quote_char:
            quote_char = None
        out.append(c)
        i += 1
    return "".join(out)


def _tokenize(command: str) -> list[str]:
    text = command.replace("\r\n", "\n").replace("\r", "\n").strip()
    text = re.sub(r"^\$\s+", "", text)
    if not text:
        raise CurlParseError(f"the command is empty; paste a curl command such as: {EXAMPLE}")
    if re.match(r"(\S*curl(\.exe)?\s+)?\^\"", text):  # Chrome's "Copy as cURL (cmd)"
        raise CurlParseError(
            "this looks like a Windows cmd command (^ escapes); copy it as cURL (bash) instead"
        )
    lexer = shlex.shlex(_prepare(text), posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        tokens = list(lexer)
    except ValueError as exc:
        raise CurlParseError(
            f"cannot split the command into arguments ({exc}): a ' or \" quote is not closed; "
            "paste the whole command"
        ) from None
    if tokens and re.fullmatch(r"(.*/)?curl(\.exe)?", tokens[0]):
        tokens = tokens[1:]
    return tokens


# ------------------------------------------------------------------------------- parsing


@dataclass
class CurlRequest:
    """What a curl command asks for, and warnings about what of it a function cannot use."""

    warnings: list[str] = field(default_factory=list)
    explicit_method: str | None = None  # -X/--request
    urls: list[str] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    json_parts: list[str] = field(default_factory=list)
    has_data: bool = False
    get: bool = False
    form: bool = False
    upload: bool = False
    user: str | None = None
    bearer: str | None = None
    cookies: list[str] = field(default_factory=list)
    url_query: list[str] = field(default_factory=list)
    timeout_ms: int | None = None

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    @property
    def method(self) -> str:
        """The method curl uses: -X, else GET for -G, POST with a body, PUT for -T, else GET."""
        if self.explicit_method:
            return self.explicit_method
        if self.get:
            return "GET"
        if self.has_data or self.form:
            return "POST"
        return "PUT" if self.upload else "GET"

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
    """Read a curl command; :class:`CurlParseError` when it has no URL or cannot be split."""
    req = CurlRequest()
    _parse_arguments(_tokenize(command), req)
    if not req.urls:
        raise CurlParseError(
            f"no URL found in the command; paste a curl command such as: {EXAMPLE}"
        )
    for extra in req.urls[1:]:
        req.warn(f"ignored extra argument {extra!r}: a function calls one URL ({req.urls[0]})")
    return req


def _encode_urlencode_arg(arg: str, flag: str, req: CurlRequest) -> str | None:
    """``--data-urlencode``: ``content``, ``=content``, ``name=content``; ``[name]@file`` is
    a file we cannot read."""
    m = re.match(r"^([^=@]*)([=@])(.*)$", arg, re.S)
    if m is None:
        return quote(arg, safe="")
    name, sep, content = m.groups()
    if sep == "@":
        req.warn(
            f"ignored {flag} {arg!r}: it reads a file, which the converter cannot see; add the field to param by hand"
        )
        return None
    return f"{name}={quote(content, safe='')}" if name else quote(content, safe="")


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
        if kind == "data" and value.startswith("@"):
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
        if value.startswith("@"):
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
        req.form = True
        req.warn(
            f"ignored {flag} field {value.split('=', 1)[0]!r}: multipart/form-data (file uploads) is not supported; a function sends a JSON or form-urlencoded body"
        )
    elif kind == "upload":
        req.upload = True
        req.warn(f"ignored {flag} {value!r}: uploading a file is not supported by a function")
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


def _parse_arguments(tokens: list[str], req: CurlRequest) -> None:
    i, n = 0, len(tokens)
    positional_only = False

    def next_arg(display: str) -> str:
        nonlocal i
        if i >= n:
            raise CurlParseError(f"{display} needs a value, but the command ends there")
        i += 1
        return tokens[i - 1]

    while i < n:
        tok = tokens[i]
        i += 1
        if tok in _SHELL_OPERATORS:
            req.warn(
                f"ignored everything from {tok!r} on: only the curl command itself is converted"
            )
            return
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
                elif opt.takes_arg:
                    _apply(opt, tok[j:] if j < len(tok) else next_arg(opt.display), req)
                    break
                else:
                    _apply(opt, None, req)
