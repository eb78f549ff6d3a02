"""``voicefn doctor``: what this host provides, and whether both sandboxes work from this install.

It starts each sandbox for real and runs one function in it (never customer code), so a problem
that only shows at start (a folder the sandbox uid cannot read, a missing package) is named with
its fix here rather than in the first call.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from ._app import EXIT_INVALID, EXIT_OK, JsonOpt, SandboxOpt, app, out, print_json, sandbox_mode


async def _checks(mode: str) -> tuple[Any, Any]:
    import asyncio

    from ..sandbox.common import check_mode
    from ..sandbox.javascript import acheck as js_acheck
    from ..sandbox.python import acheck as py_acheck

    checked = check_mode(mode)
    python, javascript = await asyncio.gather(py_acheck(mode=checked), js_acheck(mode=checked))
    return python, javascript


@app.command("doctor")
def doctor_cmd(sandbox: SandboxOpt = "isolated", json_out: JsonOpt = False) -> None:
    """Check the host and this install: does each sandbox start and run a function?

    Exit 0 when both the Python and the JavaScript sandbox work, 1 otherwise (the output names
    what failed and the fix).
    """
    import asyncio

    mode = sandbox_mode(sandbox)
    python, javascript = asyncio.run(_checks(mode))
    works = bool(python.works and javascript.works)
    if json_out:
        print_json(
            {
                "ok": works,
                "python": python.to_dict(),
                "javascript": javascript.to_dict(),
                "install": sys.prefix,
                "exit_code": EXIT_OK if works else EXIT_INVALID,
            }
        )
    else:
        out.print(f"voicefn installed in {sys.prefix}", markup=False)
        out.print(python.describe(), markup=False)
        out.print(javascript.describe(), markup=False)
        out.print("both sandboxes work" if works else "a sandbox does NOT work: see above")
    raise typer.Exit(EXIT_OK if works else EXIT_INVALID)
