"""Import functions from an OpenAPI 3.0/3.1 or Swagger 2.0 document: one per operation.

``from_openapi(spec)`` reads the document (a dict, or a JSON/YAML file) and returns an
:class:`OpenAPIImport`: the functions, each with the warnings of its operation, and the
operations it could not turn into a function with the reason. Nothing is fetched or sent.

Decisions:

- Name: the ``operationId`` (characters other than letters, digits, ``_`` and ``-`` become
  ``_``; at most 64), else ``<method>_<path words>``. A name taken twice gets ``_2``, ``_3``.
- Description: the summary, then the description's first paragraph (Markdown links and HTML
  tags removed); none at all: a TODO that ``voicefn validate`` warns about.
- URL: the first server (OpenAPI 3: server variables at their defaults; Swagger 2:
  ``schemes``/``host``/``basePath``, https first) or ``base_url``; path templates become
  ``%(name)s``.
- Parameters: path and query parameters, and the request body's properties (JSON,
  form-urlencoded or multipart), become the function's parameters, with their schemas
  (``$ref`` inlined to a bounded depth, ``allOf`` merged, ``oneOf`` read as ``anyOf``, 3.0's
  ``nullable`` as a ``null`` type, ``readOnly`` properties left out). A GET/DELETE sends its query
  parameters through ``param``; other methods send the body through ``param`` and keep required
  query parameters in the URL. A parameter named like a system variable (``agent_id``...) is
  renamed ``target_<name>``: the engine would fill it with the call's own value.
- Not mapped, each with a warning: header and cookie parameters (nothing the LLM says may set a
  header), optional query parameters of a POST/PUT/PATCH/DELETE-with-body, file uploads, nested
  objects in a form body, request bodies that are not JSON or a form, callbacks, webhooks, links,
  external ``$ref``s (files or URLs), mutual TLS.
- Security: the operation's (else the document's) first usable requirement. Bearer, OAuth 2 and
  OpenID Connect become ``Authorization: Bearer {<scheme>}``; basic becomes
  ``Authorization: Basic {<scheme>}``; an API key becomes a header, query or cookie with
  ``{<scheme>}``. ``<scheme>`` is the scheme's name in snake_case, a context variable the call
  must set (the agent's ``variables``, ``--var``): no secret is ever invented, and a warning says
  what to put there.

The package, one concept a module: :mod:`.document` (reading it, its operations and server),
:mod:`.refs`, :mod:`.schemas`, :mod:`.text`, :mod:`.security`, :mod:`.request` (parameters and
body), :mod:`.convert` (an operation into a function document) and :mod:`.importer`.
"""

from .document import METHODS as METHODS
from .document import OpenAPIError, Operation, list_operations, load_document
from .importer import ImportedOperation, OpenAPIImport, from_openapi
from .importer import summary_lines as summary_lines
from .refs import MAX_REF_DEPTH as MAX_REF_DEPTH
from .refs import inline_refs, resolve_pointer
from .request import FORM as FORM
from .request import MULTIPART as MULTIPART
from .schemas import clean_schema as clean_schema

__all__ = [
    "ImportedOperation",
    "OpenAPIError",
    "OpenAPIImport",
    "Operation",
    "from_openapi",
    "inline_refs",
    "list_operations",
    "load_document",
    "resolve_pointer",
]
