"""Deno's error messages, rewritten for the people who write functions.

Deno tells a user to "run again with the --allow-read flag"; nobody running a function can pass
Deno flags, and the sandbox grants no permission on purpose. :func:`user_advice` replaces that
advice, and Deno's wording of an import that cannot be resolved, with what works in the sandbox.
"""

from __future__ import annotations

import re

__all__ = ["user_advice"]

_GLOBALS = "axios, moment and _ (lodash) are globals"
_ADVICE = {
    "read": "a function has no file access in the sandbox: put the data in the code or fetch "
    "it over HTTP with fetch/axios",
    "write": "a function has no file access in the sandbox: return the data, or send it over "
    "HTTP with fetch/axios",
    "net": "open connections only with fetch or axios: the engine sends them through its "
    "egress policy",
    "env": "a function has no environment variables: use data.variables and data.call",
    "run": "a function cannot start programs in the sandbox",
    "sys": "a function cannot read system information in the sandbox",
    "ffi": "a function cannot load native libraries in the sandbox",
    "import": f"code cannot be loaded from the network: {_GLOBALS}",
}
_FLAG = re.compile(
    r",?\s*run again with the --allow-(?P<perm>[\w-]+) flag|"
    r"\s*\(?(?:specify|pass|use) (?:the )?--allow-(?P<perm2>[\w-]+)(?: flag)?\)?\.?"
)
_IMPORT = re.compile(
    r'(?:TypeError: )?(?:Relative import path|Import) "(?P<name>[^"]{1,200})" not '
    r"(?:a dependency(?: and not in import map)?|prefixed with[^\n]*?)(?: from \"[^\"]*\")?"
    r"(?:\n\s+at [^\n]*)*"
)


def user_advice(detail: str) -> str:
    """``detail`` with Deno's ``--allow-*`` advice and unresolvable-import wording replaced."""

    def flag(m: re.Match[str]) -> str:
        perm = m["perm"] or m["perm2"]
        return f": {_ADVICE.get(perm, 'this is not available in the sandbox')}"

    def imported(m: re.Match[str]) -> str:
        name = m["name"]
        if name.split("/", 1)[0] in ("axios", "moment", "lodash"):
            return f"import of {name!r} failed: {name} is not a module here; {_GLOBALS}"
        return (
            f"import of {name!r} failed: the module is not available in the sandbox; "
            f"{_GLOBALS}, and allowed Node built-ins (node:crypto, node:buffer, ...) may be imported"
        )

    return _FLAG.sub(flag, _IMPORT.sub(imported, detail))
