"""Import a function from a curl command: Bolna's "Generate from cURL" (seed 002), done offline.

``from_curl(command)`` reads a command as people paste it from API docs, Postman ("Code > cURL")
or a browser's "Copy as cURL (bash)" and returns a :class:`~voicefn.spec.Function` that makes the
same request, plus a warning for every flag or part of the command it did not use. The result is
a starting point: the name and description are guesses to refine, and every value in the example
request becomes a required parameter the LLM fills.

Reading the command line (shell quoting, curl's options) is :mod:`voicefn.dialects.curl_args`;
this module turns the request it reads into a function.

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
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote, unquote_plus

import httpx

from ..context import SYSTEM_VARIABLES
from ..spec import DEFAULT_TIMEOUT_MS, HTTP_METHODS, NAME_PATTERN, Function
from ..validation import validate_document
from .curl_args import EXAMPLE, CurlParseError, CurlRequest, last_header, parse_curl
from .curl_args import _decode_ansi_c as _decode_ansi_c  # re-exported: tests import it from here

__all__ = ["CurlImport", "CurlParseError", "from_curl"]

_NAME_RE: Final = re.compile(NAME_PATTERN)


@dataclass
class CurlImport:
    """A function made from a curl command, and what of the command it did not use."""

    function: Function
    warnings: list[str] = field(default_factory=list)


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


# ------------------------------------------------------------------------------- building


@dataclass
class _Params:
    """The parameters of the function being built, and their names in ``param``."""

    req: CurlRequest
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
            self.req.warn(
                f"{where} field {key!r} is not a valid parameter name: the parameter is {name!r}, the field keeps its name in param"
            )
        prop: dict[str, Any] = {"type": _json_type(value)}  # a null is a "string"
        if value is None:
            self.req.warn(
                f"{where} field {key!r} is null in the example: declared as a string; correct its type"
            )
        if isinstance(value, list) and value:
            kinds = {_json_type(v) for v in value}
            if len(kinds) == 1:
                prop["items"] = {"type": kinds.pop()}
        prop["description"] = f"{key} (example: {_example(value)})"
        self.properties[name] = prop
        if _SECRET_NAME_RE.search(key):
            self.req.warn(
                f"{where} field {key!r} looks like a secret: as a parameter the LLM must supply it; if it is fixed, write its value in param instead"
            )
        _check_system_name(name, self.req)
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


def _parse_form(text: str, where: str, req: CurlRequest) -> list[tuple[str, Any]]:
    pairs: dict[str, Any] = {}
    for part in text.split("&"):
        if not part:
            continue
        raw_key, sep, raw_value = part.partition("=")
        key, value = unquote_plus(raw_key), unquote_plus(raw_value)
        example: Any = value
        if not key:
            req.warn(f"ignored {where} part {part!r}: it has no field name")
            continue
        if not sep:
            req.warn(f"{where} part {part!r} has no value: it is kept as the fixed field {key}=")
            example = _Fixed("")
        elif "+" in raw_value:
            req.warn(
                f"{where} field {key!r}: '+' in {raw_value!r} is sent as a space; write %2B for a literal plus (e.g. a phone number)"
            )
        if key in pairs:
            req.warn(f"{where} field {key!r} is given more than once: only the last value is used")
        pairs[key] = example
    return list(pairs.items())


@dataclass(frozen=True)
class _Fixed:
    """A value that stays literally in ``param`` (not a parameter)."""

    value: Any


def _split_url(raw: str, req: CurlRequest) -> tuple[str, str, str, str | None]:
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
            raise CurlParseError(f"{url!r} is not a URL; paste a curl command such as: {EXAMPLE}")
        url = "https://" + url.removeprefix("//")
        req.warn(f"the URL has no scheme: https:// assumed ({url}); curl itself would use http://")
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in ("http", "https"):
        raise CurlParseError(f"a function calls http:// or https:// URLs, not {scheme}:// ({url})")
    rest, hash_, fragment = rest.partition("#")
    if hash_:
        req.warn(f"ignored the URL fragment #{fragment}: it is never sent to the server")
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


def _path_parameters(path: str, params: _Params, req: CurlRequest) -> tuple[str, list[str]]:
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
                req.warn(f"kept {text} in the URL: the engine fills it from the call's {wanted}")
                continue
            name = params.name_for(wanted)
            params.properties[name] = {"type": "string", "description": f"{name}, in the URL path"}
            req.warn(f"path placeholder {text} became the parameter {name!r}")
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
            req.warn(
                f"path segment {text!r} looks like an ID: it became the parameter {name!r}; "
                "if it is fixed, write it back into the URL"
            )
        else:
            if not _VERSION_RE.fullmatch(text) and _snake(text):
                words.append(_snake(text))
            continue
        segments[k] = f"%({name})s"
        _check_system_name(name, req)
        if words and not words[-1].startswith("="):
            words[-1] = "=" + words[-1]
    return "/".join(segments), words


def _check_system_name(name: str, req: CurlRequest) -> None:
    if name in SYSTEM_VARIABLES:
        req.warn(
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


def _body_param(
    body: str, headers: list[tuple[str, str]], req: CurlRequest, where: str
) -> tuple[Any, list[tuple[str, Any]]]:
    """``(fixed template or None, fields)`` of a request body; may add a Content-Type header."""
    content_type = last_header(headers, "content-type")
    kind = _content_kind(content_type)
    if kind is None:
        try:
            probe = json.loads(body) if body.strip()[:1] in ("{", "[") else None
        except ValueError:
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
    if kind == "other":
        raise CurlParseError(
            f"the body has Content-Type {content_type!r}, which a function cannot send: it sends JSON (application/json) or form (application/x-www-form-urlencoded) bodies; convert the request or change the header"
        )
    if kind == "form":
        return None, _parse_form(body, where, req)
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
        req.warn(
            f"the JSON body is a {_json_type(data)}, not an object: it is kept as a fixed param and the LLM fills nothing in it; add %(name)s placeholders by hand"
        )
        return _Fixed(data), []
    return None, list(data.items())


def _headers_dict(
    headers: list[tuple[str, str]], req: CurlRequest
) -> tuple[dict[str, str], str | None]:
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
            req.warn(f"dropped header {name}: {_DROPPED_HEADERS[low]}")
            continue
        if _BROWSER_HEADER_RE.match(low):
            dropped_browser.append(name)
            continue
        if low == "user-agent" and value.startswith("Mozilla/"):
            req.warn(
                "dropped the browser's User-Agent header (from Copy as cURL): voicefn sends its own; add it back if the API requires it"
            )
            continue
        existing = next((h for h in out if h.lower() == low), None)
        if existing is not None:
            if low == "cookie":
                value = f"{out.pop(existing)}; {value}"
            else:
                req.warn(f"header {name} is given more than once: only the last value is kept")
                del out[existing]
        out[name] = value
    if dropped_browser:
        req.warn(
            f"dropped browser headers that only make sense in a browser: {', '.join(dropped_browser)}"
        )
    for name in out:
        if name.lower() == "cookie":
            req.warn(
                "the Cookie header is stored in the function as a plain header: cookies are sensitive and usually a login session that expires; prefer an API token"
            )
        elif _SECRET_NAME_RE.search(name):
            req.warn(
                f"header {name} looks like a secret: it is stored in the function file in plain text (the engine redacts it in logs); keep that file private"
            )
    return out, token


def from_curl(command: str, *, name: str | None = None) -> CurlImport:
    """Convert a curl command into a function; see the module docstring for the rules."""
    if name is not None and not _NAME_RE.fullmatch(name):
        raise CurlParseError(
            f"name {name!r} must be 1-64 letters, digits, '_' or '-'; e.g. {_snake(name)[:64] or 'get_order'!r}"
        )
    req = parse_curl(command)
    base, path, query, userinfo = _split_url(req.urls[0], req)
    query = "&".join(q for q in (query, *req.url_query) if q)

    method = req.method
    if method not in HTTP_METHODS:
        raise CurlParseError(
            f"method {method!r} cannot be used by a function; use one of {', '.join(HTTP_METHODS)}"
        )

    headers = req.sent_headers()
    data = req.body

    params = _Params(req)
    path, words = _path_parameters(path, params, req)
    query_method = method in ("GET", "DELETE")
    fields: list[tuple[str, Any, str]] = []
    fixed: Any = None
    if req.get and data:
        if query_method:
            fields += [(k, v, "query") for k, v in _parse_form(data, "query", req)]
        else:
            query = "&".join(q for q in (query, data) if q)
        data = ""
    if query:
        if query_method:
            fields = [(k, v, "query") for k, v in _parse_form(query, "query", req)] + fields
        else:
            path += "?" + query
            req.warn(
                f"kept the query string ?{query} fixed in the URL: a {method} sends its param as the body; to let the LLM fill a query field, write %(name)s in the URL"
            )
    if data or (req.has_data and not req.get):
        fixed, body_fields = _body_param(data, headers, req, "query" if query_method else "body")
        if query_method and (body_fields or fixed is not None):
            req.warn(
                f"the command sends a body with {method}: a {method} sends its param as the query string, so the body fields become query parameters"
            )
        fields += [(k, v, "body") for k, v in body_fields]
    elif method in ("POST", "PUT", "PATCH") and not req.form and not req.upload:
        req.warn(
            f"the command sends no body: the function's {method} sends an empty JSON object {{}}"
        )

    param: Any
    if isinstance(fixed, _Fixed):
        param = fixed.value
    else:
        param = {}
        for key, value, where in fields:
            if key in param:
                req.warn(
                    f"{where} field {key!r} is also given elsewhere: only the first one is used"
                )
            elif isinstance(value, _Fixed):
                param[key] = value.value
            else:
                param[key] = params.add(key, value, where)

    final_headers, token = _headers_dict(headers, req)
    sources = [
        ("an Authorization header", token),
        ("--oauth2-bearer", f"Bearer {req.bearer}" if req.bearer else None),
        ("-u/--user", _basic(req.user, req) if req.user is not None else None),
        ("the URL's user:password@", _basic(userinfo, req) if userinfo is not None else None),
    ]
    given = [(src, value) for src, value in sources if value is not None]
    api_token = given[0][1] if given else None
    for src, _ in given[1:]:
        req.warn(f"ignored the credentials from {src}: {given[0][0]} is used as the api_token")

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
            "timeout_ms": req.timeout_ms or DEFAULT_TIMEOUT_MS,
        },
    }
    function, problems = validate_document(doc)
    if function is None:
        errors = "; ".join(str(p) for p in problems if p.severity == "error")
        raise CurlParseError(f"the converted function is not valid: {errors}")
    req.warnings += [f"validation {p}" for p in problems if p.severity == "warning"]
    return CurlImport(function, req.warnings)


def _basic(credentials: str, req: CurlRequest) -> str:
    if ":" not in credentials:
        req.warn(
            f"credentials {credentials!r} have no password (curl would prompt for one): the "
            "token encodes an empty password; edit api_token"
        )
        credentials += ":"
    raw = credentials.encode("utf-8", "replace")  # "replace": lone surrogates from a broken paste
    return "Basic " + base64.b64encode(raw).decode("ascii")
