"""Run customers' post-call JavaScript functions (hostile code) behind a real boundary.

One Deno process per tenant (kept warm) inside bubblewrap -- no network, no host files but Deno,
its libraries and the vendored axios/moment/lodash -- as an unprivileged uid in its own cgroup
memory limit; each job in a fresh pre-warmed Worker with ``deno.permissions: "none"``; HTTP only
through the caller's ``egress`` callback. See ``ISOLATION.md`` beside this file::

    sandbox = JavaScriptSandbox()
    await sandbox.start()          # SandboxUnavailable says what the host is missing
    outcome = await sandbox.run(code, "postCall", call_data, egress=policy_checked_egress,
                                tenant=agent_id)

``check()`` (for ``voicefn doctor``) says what the host provides and whether the sandbox starts
from this install, and if not, which path or requirement failed and the fix.
"""

from .api import Egress, Limits, Outcome, SandboxUnavailable
from .check import JavaScriptSandboxCheck, acheck, check
from .supervisor import JavaScriptSandbox

__all__ = [
    "Egress",
    "JavaScriptSandbox",
    "JavaScriptSandboxCheck",
    "Limits",
    "Outcome",
    "SandboxUnavailable",
    "acheck",
    "check",
]
