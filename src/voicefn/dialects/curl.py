"""Import a function from a curl command: Bolna's "Generate from cURL" (seed 002), done offline.

``from_curl(command)`` reads a command as people paste it from API docs, Postman ("Code > cURL")
or a browser's "Copy as cURL (bash)" and returns a :class:`~voicefn.spec.Function` that makes the
same request, plus a warning for every flag or part of the command it did not use. The result is
a starting point: the name and description are guesses to refine, and every value in the example
request becomes a required parameter the LLM fills.

Decisions (each is tested in ``tests/dialects/test_curl.py``):

- GET/DELETE: the query string leaves the URL and each field becomes a string parameter in
  ``param`` (the engine sends ``param`` as the query string). POST/PUT/PATCH: a query string stays
  fixed in the URL (with a warning) and the body's fields become the parameters.
- Path segments that look like IDs (digits, UUIDs, long hex, ``ORD-78234``, ``cus_...``) become
  ``%(<previous segment singularised>_id)s`` path parameters, with a warning.
- JSON object body: one parameter per top-level field, typed from the example value (an object
  stays one ``object`` parameter). A JSON list or scalar body is kept as a fixed ``param`` with a
  warning. Invalid JSON under a JSON Content-Type, and bodies that are neither JSON nor
  form-urlencoded (XML, text, multipart), raise :class:`CurlParseError`: the function would be
  wrong. A body that parses as JSON but has no Content-Type is treated as JSON (the header is
  added, with a warning); any other ``-d`` body is a form, as curl sends it, and gets
  ``Content-Type: application/x-www-form-urlencoded`` so the engine sends a form too.
- ``Authorization`` (or ``-u``, ``--oauth2-bearer``, ``user:pass@`` in the URL) becomes
  ``api_token``. ``Content-Length``, ``Host``, ``Accept-Encoding``, ``Connection`` and browser
  noise (``sec-ch-*``, ``sec-fetch-*``, ``priority``, ``upgrade-insecure-requests``, ``dnt``) are
  dropped. A ``User-Agent`` is kept unless it is a browser's (``Mozilla/...``), which only comes
  from "Copy as cURL". Cookies are kept as a ``Cookie`` header with a warning; secret-looking
  headers (``X-Api-Key``, ``*token*``, ``*secret*``...) are kept with a warning.
- ``-m/--max-time`` sets ``timeout_ms`` (bounded to 1..120000). ``-I``/``HEAD`` and other methods
  a function cannot use raise :class:`CurlParseError`.
- Parameters are all ``required`` (the example gave them); a field whose name is not a valid
  parameter name keeps its original key in ``param`` and gets a snake_case property name.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple
from urllib.parse import quote, unquote, unquote_plus

import httpx

from ..context import SYSTEM_VARIABLES
from ..spec import DEFAULT_TIMEOUT_MS, HTTP_METHODS, MAX_TIMEOUT_MS, NAME_PATTERN, Function
from ..validation import validate_document

__all__ = ["CurlImport", "CurlParseError", "from_curl"]

_NAME_RE: Final = re.compile(NAME_PATTERN)
_EXAMPLE = (
    "curl 'https://api.example.com/orders?order_id=ORD-123' -H 'Authorization: Bearer sk_...'"
)


@dataclass
class CurlImport:
    """A function made from a curl command, and what of the command it did not use."""

    function: Function
    warnings: list[str] = field(default_factory=list)


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

# ------------------------------------------------------------------------------- headers

_DROPPED_HEADERS: Final = {
    "content-length": "computed by the HTTP client",
    "host": "taken from the URL",
    "accept-encoding": "the HTTP client negotiates compression itself",
    "connection": "managed by the HTTP client",
    "keep-alive": "managed by the HTTP client",
    "transfer-encoding": "managed by the HTTP client",
    "expect": "managed by the HTTP client",
    "te": "managed by the HTTP client",
}
_BROWSER_HEADER_RE: Final = re.compile(
    r"^(sec-ch-.*|sec-fetch-.*|sec-gpc|priority|upgrade-insecure-requests|dnt)$", re.I
)
_SECRET_NAME_RE: Final = re.compile(
    r"token|secret|passw|api[-_]?key|apikey|auth|session|signature|credential|private", re.I
)

# ------------------------------------------------------------------------------- paths

_UUID_RE: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_ID_RES: Final = (
    re.compile(r"\d+"),
    _UUID_RE,
    re.compile(r"(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{16,}"),  # Mongo ObjectId, hashes
    re.compile(r"[A-Za-z]{1,12}[-_]\d{2,}[A-Za-z0-9]*|[A-Z]{2,12}-\d+"),  # ORD-78234, ORD-1
    re.compile(r"[A-Za-z]{1,4}\d{4,}"),  # ACC991042
    re.compile(r"(?=.*\d)[a-z]{2,8}_[A-Za-z0-9]{10,}"),  # cus_NffrFeUfNV2Hib
)
_VERSION_RE: Final = re.compile(r"v\d+(\.\d+)*|api|rest|public", re.I)
_VERB_WORDS: Final = (
    "get list search find lookup check create add book send update set cancel delete remove "
    "verify validate transfer notify schedule reschedule confirm submit register start stop "
    "end close open reset refund charge pay track"
)
_VERBS: Final = frozenset(_VERB_WORDS.split())
_IRREGULAR: Final = {
    "statuses": "status", "aliases": "alias", "analyses": "analysis", "people": "person",
    "children": "child", "data": "data", "media": "media", "news": "news",
}  # fmt: skip


def _snake(text: str) -> str:
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    return re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_").lower()


def _singular(word: str) -> str:
    head, _, last = word.rpartition("_")
    if last in _IRREGULAR:
        last = _IRREGULAR[last]
    elif len(last) <= 3 or last.endswith(("ss", "us", "is")):
        pass
    elif last.endswith("ies"):
        last = last[:-3] + "y"
    elif last.endswith(("sses", "shes", "ches", "xes", "zzes")):
        last = last[:-2]
    elif last.endswith("s"):
        last = last[:-1]
    return f"{head}_{last}" if head else last


def _looks_like_id(segment: str) -> bool:
    if _VERSION_RE.fullmatch(segment):
        return False
    return any(r.fullmatch(segment) for r in _ID_RES)


def _example(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


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
        if quote_char == "'":
            quote_char = None if c == "'" else quote_char
            out.append(c)
            i += 1
            continue
        if c == "\\":
            if not text.startswith("\n", i + 1):  # a backslash-newline joins two lines
                out.append(text[i : i + 2])
            i += 2
            continue
        if quote_char == '"':
            quote_char = None if c == '"' else quote_char
            out.append(c)
            i += 1
            continue
        if c == "$" and text.startswith("'", i + 1):
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
        if c in "'\"":
            quote_char = c
        out.append(c)
        i += 1
    return "".join(out)


def _tokenize(command: str) -> list[str]:
    text = command.replace("\r\n", "\n").replace("\r", "\n").strip()
    text = re.sub(r"^\$\s+", "", text)
    if not text:
        raise CurlParseError(f"the command is empty; paste a curl command such as: {_EXAMPLE}")
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
class _State:
    warnings: list[str] = field(default_factory=list)
    method: str | None = None
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


def _encode_urlencode_arg(arg: str, flag: str, st: _State) -> str | None:
    """``--data-urlencode``: ``content``, ``=content``, ``name=content``; ``[name]@file`` is
    a file we cannot read."""
    m = re.match(r"^([^=@]*)([=@])(.*)$", arg, re.S)
    if m is None:
        return quote(arg, safe="")
    name, sep, content = m.groups()
    if sep == "@":
        st.warn(
            f"ignored {flag} {arg!r}: it reads a file, which the converter cannot see; add the field to param by hand"
        )
        return None
    return f"{name}={quote(content, safe='')}" if name else quote(content, safe="")


def _apply(opt: _Opt, arg: str | None, st: _State) -> None:
    flag, kind, value = opt.display, opt.kind, arg or ""
    if kind == "request":
        st.method = value.strip().upper()
    elif kind == "header":
        if value.startswith("@"):
            st.warn(
                f"ignored {flag} {value!r}: it reads headers from a file, which the converter cannot see"
            )
        else:
            _add_header_line(value, flag, st)
    elif kind in ("data", "data-raw"):
        st.has_data = True
        if kind == "data" and value.startswith("@"):
            st.warn(
                f"ignored {flag} {value!r}: the body is read from a file, which the converter cannot see; add its fields to param by hand"
            )
        else:
            st.data.append(value)
    elif kind == "data-urlencode":
        st.has_data = True
        encoded = _encode_urlencode_arg(value, flag, st)
        if encoded is not None:
            st.data.append(encoded)
    elif kind == "json":
        st.has_data = True
        if value.startswith("@"):
            st.warn(
                f"ignored {flag} {value!r}: the body is read from a file, which the converter cannot see"
            )
            st.json_parts.append("")
        else:
            st.json_parts.append(value)
    elif kind == "get":
        st.get = True
    elif kind == "user":
        st.user = value
    elif kind == "bearer":
        st.bearer = value
    elif kind == "user-agent":
        st.headers.append(("User-Agent", value))
    elif kind == "referer":
        st.headers.append(("Referer", value.removesuffix(";auto")))
    elif kind == "cookie":
        if "=" in value:
            st.cookies.append(value)
        else:
            st.warn(
                f"ignored {flag} {value!r}: it names a cookie file, which the converter cannot read"
            )
    elif kind == "url":
        st.urls.append(value)
    elif kind == "url-query":
        encoded = value[1:] if value.startswith("+") else _encode_urlencode_arg(value, flag, st)
        if encoded:
            st.url_query.append(encoded)
    elif kind == "max-time":
        _set_timeout(value, flag, st)
    elif kind == "form":
        st.form = True
        st.warn(
            f"ignored {flag} field {value.split('=', 1)[0]!r}: multipart/form-data (file uploads) is not supported; a function sends a JSON or form-urlencoded body"
        )
    elif kind == "upload":
        st.upload = True
        st.warn(f"ignored {flag} {value!r}: uploading a file is not supported by a function")
    elif kind == "head":
        raise CurlParseError(
            f"{flag} makes a HEAD request, which a function cannot make; remove it (functions use {', '.join(HTTP_METHODS)})"
        )
    else:
        st.warn(_OPTION_NOTES[kind].format(flag=flag, arg=value))


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


def _set_timeout(value: str, flag: str, st: _State) -> None:
    try:
        seconds = float(value)
    except ValueError:
        st.warn(
            f"ignored {flag} {value!r}: not a number of seconds; timeout_ms stays {DEFAULT_TIMEOUT_MS}"
        )
        return
    if not seconds > 0 or seconds != seconds:
        st.warn(
            f"ignored {flag} {value}: curl reads it as no limit, a function needs one; timeout_ms stays {DEFAULT_TIMEOUT_MS}"
        )
        return
    ms = round(seconds * 1000) if seconds < 1e9 else MAX_TIMEOUT_MS + 1
    if ms > MAX_TIMEOUT_MS:
        st.warn(f"{flag} {value}: capped at {MAX_TIMEOUT_MS} ms, the longest a function may take")
    st.timeout_ms = min(max(ms, 1), MAX_TIMEOUT_MS)


def _add_header_line(line: str, flag: str, st: _State) -> None:
    name, sep, value = line.partition(":")
    if not sep:
        if line.endswith(";"):  # curl's way of sending a header with an empty value
            st.headers.append((line[:-1].strip(), ""))
        else:
            st.warn(f"ignored {flag} {line!r}: a header is written 'Name: value'")
        return
    if not value.strip():
        st.warn(f"ignored {flag} {line!r}: 'Name:' with no value removes a header in curl")
        return
    st.headers.append((name.strip(), value.strip()))


def _parse_arguments(tokens: list[str], st: _State) -> None:
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
            st.warn(
                f"ignored everything from {tok!r} on: only the curl command itself is converted"
            )
            return
        if positional_only or not tok.startswith("-") or tok == "-":
            st.urls.append(tok)
        elif tok == "--":
            positional_only = True
        elif tok.startswith("--"):
            name, eq, value = tok[2:].partition("=")
            opt = _LONG.get(name)
            if opt is None:
                st.warn(
                    f"ignored unknown option {tok.split('=', 1)[0]}: the converter does not know it; check whether the API needs it"
                )
            elif opt.takes_arg:
                _apply(opt, value if eq else next_arg(opt.display), st)
            else:
                _apply(opt, None, st)
        else:
            j = 1
            while j < len(tok):
                ch = tok[j]
                j += 1
                opt = _SHORT.get(ch)
                if opt is None:
                    st.warn(
                        f"ignored unknown option -{ch}: the converter does not know it; check whether the API needs it"
                    )
                elif opt.takes_arg:
                    _apply(opt, tok[j:] if j < len(tok) else next_arg(opt.display), st)
                    break
                else:
                    _apply(opt, None, st)


# ------------------------------------------------------------------------------- building


@dataclass
class _Params:
    """The parameters of the function being built, and their names in ``param``."""

    st: _State
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)

    def name_for(self, wanted: str) -> str:
        base = wanted if _NAME_RE.fullmatch(wanted) else (_snake(wanted)[:60] or "field")
        name, k = base, 2
        while name in self.properties:
            name, k = f"{base[:60]}_{k}", k + 1
        return name

    def add(self, key: str, value: Any, where: str) -> str:
        """Declare a parameter for a field with this example value; return its template."""
        name = self.name_for(key)
        if name != key:
            self.st.warn(
                f"{where} field {key!r} is not a valid parameter name: the parameter is {name!r}, the field keeps its name in param"
            )
        prop: dict[str, Any] = {"type": _json_type(value)}
        if value is None:
            prop["type"] = "string"
            self.st.warn(
                f"{where} field {key!r} is null in the example: declared as a string; correct its type"
            )
        if isinstance(value, list) and value:
            kinds = {_json_type(v) for v in value}
            if len(kinds) == 1:
                prop["items"] = {"type": kinds.pop()}
        prop["description"] = f"{key} (example: {_example(value)})"
        self.properties[name] = prop
        if _SECRET_NAME_RE.search(key):
            self.st.warn(
                f"{where} field {key!r} looks like a secret: as a parameter the LLM must supply it; if it is fixed, write its value in param instead"
            )
        _check_system_name(name, self.st)
        conv = {"integer": "i", "number": "f"}.get(prop["type"], "s")
        return f"%({name}){conv}"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _parse_form(text: str, where: str, st: _State) -> list[tuple[str, Any]]:
    pairs: dict[str, Any] = {}
    for part in text.split("&"):
        if not part:
            continue
        raw_key, sep, raw_value = part.partition("=")
        key, value = unquote_plus(raw_key), unquote_plus(raw_value)
        example: Any = value
        if not key:
            st.warn(f"ignored {where} part {part!r}: it has no field name")
            continue
        if not sep:
            st.warn(f"{where} part {part!r} has no value: it is kept as the fixed field {key}=")
            example = _Fixed("")
        elif "+" in raw_value:
            st.warn(
                f"{where} field {key!r}: '+' in {raw_value!r} is sent as a space; write %2B for a literal plus (e.g. a phone number)"
            )
        if key in pairs:
            st.warn(f"{where} field {key!r} is given more than once: only the last value is used")
        pairs[key] = example
    return list(pairs.items())


@dataclass(frozen=True)
class _Fixed:
    """A value that stays literally in ``param`` (not a parameter)."""

    value: Any


def _split_url(raw: str, st: _State) -> tuple[str, str, str, str | None]:
    """``(scheme://authority, path, query, userinfo)`` of the request URL."""
    url = raw.strip()
    if "{{" in url:
        raise CurlParseError(
            f"the URL {url!r} contains Postman variables ({{{{...}}}}); replace them with real values before converting"
        )
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
        host_like = re.match(
            r"^(//)?(localhost|[\w-]+(\.[\w-]+)+|\[[0-9a-fA-F:.]+\])(:\d+)?([/?#]|$)", url
        )
        if host_like is None:
            raise CurlParseError(f"{url!r} is not a URL; paste a curl command such as: {_EXAMPLE}")
        url = "https://" + url.removeprefix("//")
        st.warn(f"the URL has no scheme: https:// assumed ({url}); curl itself would use http://")
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in ("http", "https"):
        raise CurlParseError(f"a function calls http:// or https:// URLs, not {scheme}:// ({url})")
    rest, hash_, fragment = rest.partition("#")
    if hash_:
        st.warn(f"ignored the URL fragment #{fragment}: it is never sent to the server")
    rest, _, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    base = f"{scheme.lower()}://{host if at else authority}"
    try:
        parsed = httpx.URL(base)
    except (httpx.InvalidURL, ValueError) as exc:
        raise CurlParseError(f"{raw!r} is not a valid URL ({exc})") from None
    if not parsed.host:
        raise CurlParseError(
            f"the URL {raw!r} has no host; write it like https://api.example.com/orders"
        )
    return base, slash + path, query, (unquote(userinfo) if at else None)


def _path_parameters(path: str, params: _Params, st: _State) -> tuple[str, list[str]]:
    """Replace ID-like path segments with placeholders; also the words that name the function.

    A word is marked with a leading "=" when an ID follows it (it then names one thing).
    """
    original = path.split("/")
    segments = list(original)
    words: list[str] = []
    for k, seg in enumerate(original):
        text = unquote(seg)
        if not text:
            continue
        doc_placeholder = re.fullmatch(r"\{(\w+)\}|:(\w+)|<(\w+)>", text)
        if doc_placeholder:  # /orders/{order_id}, /orders/:id, /orders/<id> as API docs write
            wanted = next(g for g in doc_placeholder.groups() if g)
            if text.startswith("{") and wanted in SYSTEM_VARIABLES:
                st.warn(f"kept {text} in the URL: the engine fills it from the call's {wanted}")
                continue
            name = params.name_for(wanted)
            params.properties[name] = {"type": "string", "description": f"{name}, in the URL path"}
            st.warn(f"path placeholder {text} became the parameter {name!r}")
        elif _looks_like_id(text):
            prev = unquote(original[k - 1]) if k > 0 else ""
            stem = ""
            if prev and not _looks_like_id(prev) and not _VERSION_RE.fullmatch(prev):
                stem = _singular(_snake(prev))
            wanted = f"{stem[:58]}_id" if stem and stem not in ("id", "ids") else "id"
            name = params.name_for(wanted)
            params.properties[name] = {
                "type": "string",
                "description": f"{name}, in the URL path (example: {_example(text)})",
            }
            st.warn(
                f"path segment {text!r} looks like an ID: it became the parameter {name!r}; "
                "if it is fixed, write it back into the URL"
            )
        else:
            if not _VERSION_RE.fullmatch(text) and _snake(text):
                words.append(_snake(text))
            continue
        segments[k] = f"%({name})s"
        _check_system_name(name, st)
        if words and not words[-1].startswith("="):
            words[-1] = "=" + words[-1]
    return "/".join(segments), words


def _check_system_name(name: str, st: _State) -> None:
    if name in SYSTEM_VARIABLES:
        st.warn(
            f"parameter {name!r} has the name of a system variable: during a call it is filled "
            f"from the call's own {name} and the LLM is not asked; rename it if the caller "
            "should provide it"
        )


def _function_name(method: str, words: list[str], host: str) -> str:
    """``get_orders``, ``create_store_rating``, ``get_agent``, ``cancel_order``..."""
    if not words:
        labels = [x for x in host.split(".") if x not in ("api", "www", "app", "m")] or [host]
        words = [_snake(labels[0]) or "api"]
    last = words[-1].lstrip("=")
    if last in _VERBS:  # /orders/9/cancel, /send_sms: the path already says what it does
        name = f"{last}_{_singular(words[-2].lstrip('='))}" if len(words) > 1 else last
    elif last.split("_")[0] in _VERBS:
        name = last
    else:
        named = [_singular(w.lstrip("=")) for w in words[-2:-1]]
        single = words[-1].startswith("=") or method == "POST"
        named.append(_singular(last) if single else last)
        verb = {"GET": "get", "POST": "create", "DELETE": "delete"}.get(method, "update")
        name = f"{verb}_{'_'.join(named)}"
    name = re.sub(r"_+", "_", name)[:64].strip("_")
    return name if _NAME_RE.fullmatch(name) else "call_api"


def _content_kind(content_type: str | None) -> str | None:
    if content_type is None:
        return None
    base = content_type.split(";")[0].strip().lower()
    if base == "application/json" or re.fullmatch(r"application/[\w.+-]*\+json", base):
        return "json"
    if base == "application/x-www-form-urlencoded":
        return "form"
    return "other"


def _header_index(headers: list[tuple[str, str]], name: str) -> int | None:
    found = None
    for k, (h, _) in enumerate(headers):
        if h.lower() == name:
            found = k
    return found


def _body_param(
    body: str, headers: list[tuple[str, str]], st: _State, where: str
) -> tuple[Any, list[tuple[str, Any]]]:
    """``(fixed template or None, fields)`` of a request body; may add a Content-Type header."""
    ct_index = _header_index(headers, "content-type")
    content_type = headers[ct_index][1] if ct_index is not None else None
    kind = _content_kind(content_type)
    if kind is None:
        try:
            probe = json.loads(body) if body.strip()[:1] in ("{", "[") else None
        except ValueError:
            probe = None
        if probe is not None:
            kind = "json"
            headers.append(("Content-Type", "application/json"))
            st.warn(
                "the body is JSON but the command sets no Content-Type (curl would send it as a form): added Content-Type: application/json"
            )
        else:
            kind = "form"
            if where == "body":
                headers.append(("Content-Type", "application/x-www-form-urlencoded"))
                st.warn(
                    "added Content-Type: application/x-www-form-urlencoded (curl's default for -d) so the function sends a form body too"
                )
    if kind == "other":
        raise CurlParseError(
            f"the body has Content-Type {content_type!r}, which a function cannot send: it sends JSON (application/json) or form (application/x-www-form-urlencoded) bodies; convert the request or change the header"
        )
    if kind == "form":
        return None, _parse_form(body, where, st)
    if not body.strip():
        return None, []
    try:
        data = json.loads(body)
    except ValueError as exc:
        detail = (
            f"{exc.msg} at line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else str(exc)
        )
        raise CurlParseError(
            f"the body is not valid JSON ({detail}); fix the JSON, or remove the JSON Content-Type header if it is a form"
        ) from None
    if not isinstance(data, dict):
        st.warn(
            f"the JSON body is a {_json_type(data)}, not an object: it is kept as a fixed param and the LLM fills nothing in it; add %(name)s placeholders by hand"
        )
        return _Fixed(data), []
    return None, list(data.items())


def _headers_dict(headers: list[tuple[str, str]], st: _State) -> tuple[dict[str, str], str | None]:
    """The function's headers, and the Authorization value (the api_token)."""
    out: dict[str, str] = {}
    token: str | None = None
    dropped_browser: list[str] = []
    for name, value in headers:
        low = name.lower()
        if "{{" in value:
            raise CurlParseError(
                f"header {name} contains a Postman variable ({value!r}); replace it with the real "
                "value before converting"
            )
        if low == "authorization":
            token = value
            continue
        if low in _DROPPED_HEADERS:
            st.warn(f"dropped header {name}: {_DROPPED_HEADERS[low]}")
            continue
        if _BROWSER_HEADER_RE.match(low):
            dropped_browser.append(name)
            continue
        if low == "user-agent" and value.startswith("Mozilla/"):
            st.warn(
                "dropped the browser's User-Agent header (from Copy as cURL): voicefn sends its own; add it back if the API requires it"
            )
            continue
        existing = next((h for h in out if h.lower() == low), None)
        if existing is not None:
            if low == "cookie":
                value = f"{out.pop(existing)}; {value}"
            else:
                st.warn(f"header {name} is given more than once: only the last value is kept")
                del out[existing]
        out[name] = value
    if dropped_browser:
        st.warn(
            f"dropped browser headers that only make sense in a browser: {', '.join(dropped_browser)}"
        )
    for name in out:
        if name.lower() == "cookie":
            st.warn(
                "the Cookie header is stored in the function as a plain header: cookies are sensitive and usually a login session that expires; prefer an API token"
            )
        elif _SECRET_NAME_RE.search(name):
            st.warn(
                f"header {name} looks like a secret: it is stored in the function file in plain text (the engine redacts it in logs); keep that file private"
            )
    return out, token


def from_curl(command: str, *, name: str | None = None) -> CurlImport:
    """Convert a curl command into a function; see the module docstring for the rules."""
    if name is not None and not _NAME_RE.fullmatch(name):
        raise CurlParseError(
            f"name {name!r} must be 1-64 letters, digits, '_' or '-'; e.g. {_snake(name)[:64] or 'get_order'!r}"
        )
    st = _State()
    _parse_arguments(_tokenize(command), st)
    if not st.urls:
        raise CurlParseError(
            f"no URL found in the command; paste a curl command such as: {_EXAMPLE}"
        )
    for extra in st.urls[1:]:
        st.warn(f"ignored extra argument {extra!r}: a function calls one URL ({st.urls[0]})")
    base, path, query, userinfo = _split_url(st.urls[0], st)
    query = "&".join(q for q in (query, *st.url_query) if q)

    if st.method:
        method = st.method
    elif st.get:
        method = "GET"
    elif st.has_data or st.form:
        method = "POST"
    else:
        method = "PUT" if st.upload else "GET"
    if method not in HTTP_METHODS:
        raise CurlParseError(
            f"method {method!r} cannot be used by a function; use one of {', '.join(HTTP_METHODS)}"
        )

    headers = list(st.headers)
    if st.cookies:
        headers.append(("Cookie", "; ".join(st.cookies)))
    if st.json_parts:
        if _header_index(headers, "content-type") is None:
            headers.append(("Content-Type", "application/json"))
        if _header_index(headers, "accept") is None:
            headers.append(("Accept", "application/json"))
    data = "&".join([*st.data, "".join(st.json_parts)] if st.json_parts else st.data)

    params = _Params(st)
    path, words = _path_parameters(path, params, st)
    query_method = method in ("GET", "DELETE")
    fields: list[tuple[str, Any, str]] = []
    fixed: Any = None
    if st.get and data:
        if query_method:
            fields += [(k, v, "query") for k, v in _parse_form(data, "query", st)]
        else:
            query = "&".join(q for q in (query, data) if q)
        data = ""
    if query:
        if query_method:
            fields = [(k, v, "query") for k, v in _parse_form(query, "query", st)] + fields
        else:
            path += "?" + query
            st.warn(
                f"kept the query string ?{query} fixed in the URL: a {method} sends its param as the body; to let the LLM fill a query field, write %(name)s in the URL"
            )
    if data or (st.has_data and not st.get):
        fixed, body_fields = _body_param(data, headers, st, "query" if query_method else "body")
        if query_method and (body_fields or fixed is not None):
            st.warn(
                f"the command sends a body with {method}: a {method} sends its param as the query string, so the body fields become query parameters"
            )
        fields += [(k, v, "body") for k, v in body_fields]
    elif method in ("POST", "PUT", "PATCH") and not st.form and not st.upload:
        st.warn(
            f"the command sends no body: the function's {method} sends an empty JSON object {{}}"
        )

    param: Any
    if isinstance(fixed, _Fixed):
        param = fixed.value
    else:
        param = {}
        for key, value, where in fields:
            if key in param:
                st.warn(
                    f"{where} field {key!r} is also given elsewhere: only the first one is used"
                )
            elif isinstance(value, _Fixed):
                param[key] = value.value
            else:
                param[key] = params.add(key, value, where)

    final_headers, token = _headers_dict(headers, st)
    sources = [
        ("an Authorization header", token),
        ("--oauth2-bearer", f"Bearer {st.bearer}" if st.bearer else None),
        ("-u/--user", _basic(st.user, st) if st.user is not None else None),
        ("the URL's user:password@", _basic(userinfo, st) if userinfo is not None else None),
    ]
    given = [(src, value) for src, value in sources if value is not None]
    api_token = given[0][1] if given else None
    for src, _ in given[1:]:
        st.warn(f"ignored the credentials from {src}: {given[0][0]} is used as the api_token")

    url = base + path
    shown = re.sub(r"%\((\w+)\)s", r"<\1>", url.split("?")[0])
    doc = {
        "name": name or _function_name(method, words, httpx.URL(base).host),
        "description": f"Calls {method} {shown}. TODO: say when the agent should call this (e.g. 'Use when the caller asks ...').",
        "phase": "in_call",
        "parameters": {
            "type": "object",
            "properties": params.properties,
            "required": list(params.properties),
        },
        "filler": None,
        "action": {
            "type": "http",
            "method": method,
            "url": url,
            "param": param,
            "api_token": api_token,
            "headers": final_headers,
            "timeout_ms": st.timeout_ms or DEFAULT_TIMEOUT_MS,
        },
    }
    function, problems = validate_document(doc)
    if function is None:
        errors = "; ".join(str(p) for p in problems if p.severity == "error")
        raise CurlParseError(f"the converted function is not valid: {errors}")
    st.warnings += [f"validation {p}" for p in problems if p.severity == "warning"]
    return CurlImport(function, st.warnings)


def _basic(credentials: str, st: _State) -> str:
    if ":" not in credentials:
        st.warn(
            f"credentials {credentials!r} have no password (curl would prompt for one): the "
            "token encodes an empty password; edit api_token"
        )
        credentials += ":"
    try:
        raw = credentials.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from a broken paste
        raw = credentials.encode("utf-8", "replace")
    return "Basic " + base64.b64encode(raw).decode("ascii")
