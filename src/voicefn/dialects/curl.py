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
- No parameter is ever named like a system variable (``agent_id``, ``call_sid``...): the engine
  would fill it with this call's own value. It becomes ``target_<name>``, with a warning; this
  covers ID path segments (``/agents/<uuid>``), ``{agent_id}`` doc placeholders and body fields.
- Shell expansions (``$TOKEN``, ``${API_KEY}``, ``$(command)``; in headers and credentials also a
  single-quoted ``$NAME``) become ``{context_variable}`` placeholders, with a warning saying how
  to set them. Credentials holding one go into an ``Authorization`` header template (the api_token
  is sent as written); ``-u user:$PASS`` becomes ``Basic {basic_credentials}``. A host from a
  variable is refused.
- ``-F`` text fields are sent as ``multipart/form-data`` (a Content-Type header without boundary);
  file fields (``@file``, ``<file``) are refused. A key given several times keeps every value as
  a list (an ``array`` parameter, sent as repeated keys).
- A paste that makes several requests (``--next``, several URLs, several curl commands) gives one
  function per request with :func:`from_curl_all`; :func:`from_curl` refuses it, naming them.
  ``-T FILE`` is a PUT (curl appends the file name to a URL ending in ``/``); with ``-d``/``-F``
  it is refused, as curl would send only the file.
"""

from __future__ import annotations

import base64
import json
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote

import httpx

from ..context import SYSTEM_VARIABLES
from ..spec import DEFAULT_TIMEOUT_MS, HTTP_METHODS, NAME_PATTERN, Function
from ..validation import validate_document
from .curl_args import EXAMPLE, CurlParseError, CurlRequest, parse_curl_all, several_requests
from .curl_body import Fixed, ShellNames, body_fields, content_kind, form_fields, parse_form
from .curl_shell import decode_ansi_c as _decode_ansi_c  # noqa: F401 (tests import it here)
from .curl_shell import marked, restore

__all__ = ["CurlImport", "CurlParseError", "from_curl", "from_curl_all"]

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
    reserved: set[str] = field(default_factory=set)  # the context variables' names
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)

    def name_for(self, wanted: str, where: str) -> str:
        """A free parameter name for ``wanted``; never a system variable's (the engine would
        fill it with this call's own value and hide it from the LLM)."""
        base = wanted if _NAME_RE.fullmatch(wanted) else (_snake(wanted)[:60] or "field")
        if base in SYSTEM_VARIABLES:
            self.req.warn(
                f"{where}: the parameter is 'target_{base}', not {base!r}: {base} is a system "
                f"variable, which the engine fills with this call's own {base} and never asks "
                f"the LLM for; write {{{base}}} instead of %(target_{base})s if the call's own "
                f"{base} is what the API needs"
            )
            base = f"target_{base}"
        name, k = base, 2
        while name in self.properties or name in self.reserved:
            name, k = f"{base[:60]}_{k}", k + 1
        return name

    def add(self, key: str, value: Any, where: str) -> str:
        """Declare a parameter for a field with this example value; return its template."""
        name = self.name_for(key, f"{where} field {key!r}")
        if name != key and not name.startswith("target_"):
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
                f"{where} field {key!r} looks like a secret: as a parameter the LLM must supply it; if it is fixed, write its value in param instead (or $NAME in the command, for a context variable)"
            )
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
        if host_like is None and marked(re.split(r"[/?#]", url, maxsplit=1)[0]):
            raise CurlParseError(
                f"the URL {restore(url, req.shell_vars)!r} takes its host from a shell variable: a function's host is written literally (nothing may change where it sends data); replace the variable with the host"
            )
        if host_like is None:
            raise CurlParseError(
                f"{restore(url, req.shell_vars)!r} is not a URL; paste a curl command such as: {EXAMPLE}"
            )
        url = "https://" + url.removeprefix("//")
        req.warn(f"the URL has no scheme: https:// assumed ({url}); curl itself would use http://")
    scheme, _, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if marked(scheme) or marked(authority.rpartition("@")[2]):
        shown = restore(url, req.shell_vars)
        raise CurlParseError(
            f"the URL {shown!r} takes its scheme, host or port from a shell variable: a function's host is written literally (nothing may change where it sends data); replace the variable with the host"
        )
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


def _path_parameters(path: str, params: _Params, names: ShellNames) -> tuple[str, list[str]]:
    """Replace ID-like path segments with placeholders; also the words that name the function.

    A word is marked with a leading "=" when an ID follows it (it then names one thing).
    """
    req = names.req
    original = path.split("/")
    segments = list(original)
    words: list[str] = []
    for k, seg in enumerate(original):
        text = unquote(seg)
        if not text:
            continue
        if marked(seg):
            segments[k] = names.sub(seg, "in the URL path")
            continue
        doc_placeholder = re.fullmatch(r"\{(\w+)\}|:(\w+)|<(\w+)>", text)
        if doc_placeholder:  # /orders/{order_id}, /orders/:id, /orders/<id> as API docs write
            wanted = next(g for g in doc_placeholder.groups() if g)
            name = params.name_for(wanted, f"path placeholder {text}")
            params.properties[name] = {"type": "string", "description": f"{name}, in the URL path"}
            req.warn(f"path placeholder {text} became the parameter {name!r}")
        elif _looks_like_id(text):
            prev = unquote(original[k - 1]) if k > 0 else ""
            stem = ""
            if prev and not _looks_like_id(prev) and not _VERSION_RE.fullmatch(prev):
                stem = _singular(_snake(prev))
            wanted = f"{stem[:58]}_id" if stem and stem not in ("id", "ids") else "id"
            name = params.name_for(wanted, f"path segment {text!r}")
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
        if words and not words[-1].startswith("="):
            words[-1] = "=" + words[-1]
    return "/".join(segments), words


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


def _headers_dict(
    headers: list[tuple[str, str]], names: ShellNames
) -> tuple[dict[str, str], str | None]:
    """The function's headers, and the Authorization value (the api_token)."""
    req = names.req
    out: dict[str, str] = {}
    token: str | None = None
    dropped_browser: list[str] = []
    for name, raw in headers:
        low = name.lower()
        if marked(name):
            raise CurlParseError(
                f"the header name {restore(name, req.shell_vars)!r} comes from a shell variable; write the header's name"
            )
        value = names.sub(raw, f"in the {name} header", literal_dollars=True)
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
        elif _SECRET_NAME_RE.search(name) and not re.fullmatch(r"(\w+ )?\{\w+\}", out[name]):
            req.warn(
                f"header {name} looks like a secret: it is stored in the function file in plain text (the engine redacts it in logs); keep that file private"
            )
    return out, token


def from_curl(command: str, *, name: str | None = None) -> CurlImport:
    """Convert a curl command that makes one request into a function; see the module docstring.

    A paste that makes several requests (``--next``, several URLs, several curl commands) raises
    :class:`CurlParseError` naming them: :func:`from_curl_all` converts each.
    """
    _check_name(name)
    requests = parse_curl_all(command)
    if len(requests) > 1:
        raise CurlParseError(several_requests(requests))
    return _convert(requests[0], name)


def from_curl_all(command: str, *, name: str | None = None) -> list[CurlImport]:
    """One function per request of the paste, in order; names made unique (``name_2``...)."""
    _check_name(name)
    out: list[CurlImport] = []
    taken: set[str] = set()
    for k, req in enumerate(parse_curl_all(command)):
        wanted = f"{name}_{k + 1}"[-64:] if name and k else name
        imported = _convert(req, wanted)
        fn_name, n = imported.function.name, 2
        while fn_name in taken:
            fn_name, n = f"{imported.function.name[:60]}_{n}", n + 1
        if fn_name != imported.function.name:
            imported.function = imported.function.model_copy(update={"name": fn_name})
        taken.add(fn_name)
        if req.label:
            imported.warnings = [f"{req.label}: {w}" for w in imported.warnings]
        out.append(imported)
    return out


def _check_name(name: str | None) -> None:
    if name is not None and not _NAME_RE.fullmatch(name):
        raise CurlParseError(
            f"name {name!r} must be 1-64 letters, digits, '_' or '-'; e.g. {_snake(name)[:64] or 'get_order'!r}"
        )


def _upload_url(url: str, file: str) -> str:
    """curl appends the uploaded file's name to a URL whose path is empty or ends with '/'."""
    rest = url.split("://", 1)[-1].split("?", 1)[0].split("#", 1)[0]
    path = rest.partition("/")[2] if "/" in rest else ""
    if file in ("-", ".") or (path and not path.endswith("/")):
        return url
    head, sep, tail = url.partition("?")
    joined = head + ("" if head.endswith("/") else "/") + posixpath.basename(file)
    return joined + sep + tail


def _convert(req: CurlRequest, name: str | None) -> CurlImport:
    names = ShellNames(req)
    method = req.method
    if marked(method):
        raise CurlParseError(
            f"the method {restore(method, req.shell_vars)} comes from a shell variable; write the method ({', '.join(HTTP_METHODS)})"
        )
    if method not in HTTP_METHODS:
        raise CurlParseError(
            f"method {method!r} cannot be used by a function; use one of {', '.join(HTTP_METHODS)}"
        )
    upload = req.upload
    if upload is not None and (req.has_data or req.form):
        given = "-F" if req.form else "-d"
        raise CurlParseError(
            f"the command uploads {upload!r} with -T and also gives {given} data: curl sends only the file (as a PUT). Remove -T to send the {given} data, or remove {given} to upload the file"
        )
    if req.form and (req.has_data or req.get):
        raise CurlParseError(
            f"the command mixes -F (multipart form) with {'-d' if req.has_data else '-G'}, which curl itself refuses ('You can only select one HTTP request method'); keep one of them"
        )
    url = _upload_url(req.url, upload) if upload is not None else req.url
    base, path, query, userinfo = _split_url(url, req)
    query = "&".join(q for q in (query, *req.url_query) if q)

    headers = req.sent_headers()
    data = req.body
    params = _Params(req, names.taken())
    path, words = _path_parameters(path, params, names)
    query_method = method in ("GET", "DELETE")
    fields: list[tuple[str, Any, str]] = []
    fixed: Fixed | None = None
    if req.get and data and not query_method:
        query = "&".join(q for q in (query, data) if q)
        data = ""
    if query_method and (query or (req.get and data)):
        joined = "&".join(q for q in (query, data if req.get else "") if q)
        fields += [(k, v, "query") for k, v in parse_form(joined, "query", names)]
        query = ""
        if req.get:
            data = ""
    if query:
        path += "?" + names.sub(query, "in the query string")
        req.warn(
            f"kept the query string ?{restore(query, req.shell_vars)} fixed in the URL: a {method} sends its param as the body; to let the LLM fill a query field, write %(name)s in the URL"
        )
    if req.form:
        if query_method:
            raise CurlParseError(
                f"-F sends a multipart body, but the method is {method}, whose param is sent as the query string; remove -X {method} (curl uses POST for -F)"
            )
        fields += [(k, v, "multipart") for k, v in form_fields(req.form_parts, names)]
        _multipart_content_type(headers, req)
    elif data or (req.has_data and not req.get):
        fixed, found = body_fields(data, headers, names, "query" if query_method else "body")
        if query_method and (found or fixed is not None):
            req.warn(
                f"the command sends a body with {method}: a {method} sends its param as the query string, so the body fields become query parameters"
            )
        fields += [(k, v, "body") for k, v in found]
    elif upload is not None:
        req.warn(
            f"the body curl sends is the file {upload!r} (-T), which the converter cannot see: the function's {method} sends an empty JSON object {{}}; write the body into param"
        )
    elif method in ("POST", "PUT", "PATCH"):
        req.warn(
            f"the command sends no body: the function's {method} sends an empty JSON object {{}}"
        )

    param: Any
    if fixed is not None:
        param = fixed.value
    else:
        param = {}
        for key, value, where in fields:
            if key in param:
                req.warn(
                    f"{where} field {key!r} is also given elsewhere: only the first one is used"
                )
            elif isinstance(value, Fixed):
                param[key] = value.value
            else:
                param[key] = params.add(key, value, where)

    final_headers, token = _headers_dict(headers, names)
    api_token, auth_header = _credentials(req, names, token, userinfo)
    if auth_header is not None:
        final_headers["Authorization"] = auth_header

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
    for warning in names.warnings():
        req.warn(warning)
    function, problems = validate_document(doc, variables=names.used)
    if function is None:
        errors = "; ".join(str(p) for p in problems if p.severity == "error")
        raise CurlParseError(f"the converted function is not valid: {errors}")
    req.warnings += [f"validation {p}" for p in problems if p.severity == "warning"]
    return CurlImport(function, req.warnings)


def _multipart_content_type(headers: list[tuple[str, str]], req: CurlRequest) -> None:
    """-F sends multipart/form-data: say so in the function's Content-Type, without a boundary
    (the HTTP client makes one for each request)."""
    given = [v for h, v in headers if h.lower() == "content-type"]
    headers[:] = [(h, v) for h, v in headers if h.lower() != "content-type"]
    if given and content_kind(given[-1]) != "multipart":
        req.warn(
            f"replaced Content-Type: {given[-1]} with multipart/form-data: -F sends a multipart body"
        )
    elif given and given[-1].split(";")[0].strip() != given[-1]:
        req.warn(
            "dropped the boundary from Content-Type: multipart/form-data: the HTTP client makes its own for each request"
        )
    headers.append(("Content-Type", "multipart/form-data"))


def _credentials(
    req: CurlRequest, names: ShellNames, token: str | None, userinfo: str | None
) -> tuple[str | None, str | None]:
    """``(api_token, Authorization header template)``: credentials that hold shell variables
    become a header with ``{context_variable}`` placeholders (the api_token is sent as written)."""
    bearer = names.sub(req.bearer, "--oauth2-bearer", literal_dollars=True) if req.bearer else None
    sources = [
        ("an Authorization header", token),
        ("--oauth2-bearer", f"Bearer {bearer}" if bearer else None),
        ("-u/--user", _basic(req.user, "-u/--user", names) if req.user is not None else None),
        (
            "the URL's user:password@",
            _basic(userinfo, "the URL's user:password@", names) if userinfo is not None else None,
        ),
    ]
    given = [(src, value) for src, value in sources if value is not None]
    if not given:
        return None, None
    for src, _ in given[1:]:
        req.warn(f"ignored the credentials from {src}: {given[0][0]} is used as the api_token")
    value = given[0][1]
    assert value is not None
    if re.search(r"\{\w+\}", value):
        return None, value
    return value, None


def _basic(credentials: str, where: str, names: ShellNames) -> str:
    req = names.req
    written = restore(credentials, req.shell_vars)
    if marked(credentials) or re.search(r"\$\{?[A-Za-z_]", credentials):
        wanted, n = "basic_credentials", 2
        while wanted in names.taken():
            wanted, n = f"basic_credentials_{n}", n + 1
        names.add(
            wanted,
            where,
            f"{where} {written!r} holds shell variables, and Basic credentials are the base64 of "
            f"user:password, which a template cannot compute: the function sends Authorization: "
            f"Basic {{{wanted}}}, whose value is the output of printf '%s' \"{written}\" | base64",
        )
        return f"Basic {{{wanted}}}"
    if ":" not in credentials:
        req.warn(
            f"credentials {credentials!r} have no password (curl would prompt for one): the "
            "token encodes an empty password; edit api_token"
        )
        credentials += ":"
    raw = credentials.encode("utf-8", "replace")  # "replace": lone surrogates from a broken paste
    return "Basic " + base64.b64encode(raw).decode("ascii")
