"""Which Node built-in modules a function may import: an allow-list, enforced by an import map.

Deno resolves ``import("node:x")`` through the import map given with ``--import-map`` before it
looks at its built-ins, so every built-in that is not allowed is mapped to a module that throws
(:data:`BLOCKED_MESSAGE`) -- in the Worker and for static imports of an ES-module function alike.
An import map cannot say "everything else", so the blocked list names every built-in Deno has;
the host reports Deno's own list (``module.builtinModules``) when it starts, and a process whose
Deno knows a built-in that is in neither list is refused (:func:`unknown_builtins`).

Not allowed: anything that starts threads or processes or changes the runtime
(``worker_threads``, ``child_process``, ``cluster``, ``v8``, ``vm``, ``inspector``, ``module``
(``createRequire``), ``wasi``, ``trace_events``, ``repl``, ``node:test``, ``node:sqlite``) and
anything that only reaches the host (``fs``, ``os``, ``net``, ``http``, ``dns``, ``tty``...; Deno's
permissions refuse those too). ``process.getBuiltinModule``/``process.binding`` (which bypass the
import map) are removed from ``process`` in the Worker before the function runs (``worker.js``).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable

__all__ = [
    "ALLOWED",
    "BLOCKED",
    "BLOCKED_MESSAGE",
    "LIBRARIES",
    "import_map_json",
    "unknown_builtins",
]

#: pure JavaScript, no threads, processes, files or network of their own
ALLOWED: frozenset[str] = frozenset(
    {
        "assert",
        "assert/strict",
        "async_hooks",
        "buffer",
        "console",
        "constants",
        "crypto",  # createHash/createHmac for webhook signatures; async KDFs: see ISOLATION.md
        "diagnostics_channel",
        "domain",
        "events",
        "path",
        "path/posix",
        "path/win32",
        "perf_hooks",
        "process",  # the same (scrubbed) object as the global `process`
        "punycode",
        "querystring",
        "stream",
        "stream/consumers",
        "stream/promises",
        "stream/web",
        "string_decoder",
        "sys",
        "timers",
        "timers/promises",
        "url",
        "util",
        "util/types",
        "zlib",
        "_stream_duplex",
        "_stream_passthrough",
        "_stream_readable",
        "_stream_transform",
        "_stream_writable",
    }
)

#: every other built-in (Deno 2.x), and a few names that only some versions have
BLOCKED: frozenset[str] = frozenset(
    {
        "worker_threads",
        "child_process",
        "cluster",
        "v8",
        "vm",
        "inspector",
        "inspector/promises",
        "module",
        "wasi",
        "trace_events",
        "repl",
        "test",
        "test/reporters",
        "sqlite",
        "sea",
        "fs",
        "fs/promises",
        "os",
        "dns",
        "dns/promises",
        "net",
        "tls",
        "dgram",
        "http",
        "https",
        "http2",
        "tty",
        "readline",
        "readline/promises",
        "_http_agent",
        "_http_common",
        "_http_outgoing",
        "_http_server",
        "_tls_common",
        "_tls_wrap",
    }
)

BLOCKED_MESSAGE = "is blocked in the voicefn sandbox"


def _stub(name: str) -> str:
    message = f"node:{name} {BLOCKED_MESSAGE} (it is not available to functions)"
    return "data:text/javascript," + urllib.parse.quote(
        f"throw new Error({json.dumps(message)});", safe=""
    )


#: the vendored libraries a function may also import by name (the same instances as the
#: globals ``axios``, ``moment``, ``_``): name -> file in ``vendor/``
LIBRARIES: dict[str, str] = {"axios": "axios.js", "moment": "moment.js", "lodash": "lodash.mjs"}


def import_map_json(vendor: str | None = None) -> str:
    """The import map: every blocked built-in, with and without ``node:``, to a throwing stub;
    and, given ``vendor`` (the ``file:`` URL of the ``vendor/`` folder as the process sees it),
    ``axios``, ``moment`` and ``lodash`` to the vendored copies."""
    imports: dict[str, str] = {}
    for name in sorted(BLOCKED):
        imports[f"node:{name}"] = _stub(name)
        imports[name] = _stub(name)
    if vendor is not None:
        base = vendor.rstrip("/")
        for name, file in LIBRARIES.items():
            imports[name] = f"{base}/{file}"
    return json.dumps({"imports": imports}, indent=1, sort_keys=True)


def unknown_builtins(reported: Iterable[object]) -> list[str]:
    """The built-ins Deno reported that are neither allowed nor blocked (sorted, bounded)."""
    unknown: set[str] = set()
    for item in reported:
        if not isinstance(item, str) or len(item) > 100:
            unknown.add(repr(item)[:100])
            continue
        name = item.removeprefix("node:")
        if name not in ALLOWED and name not in BLOCKED:
            unknown.add(name)
    return sorted(unknown)[:50]
