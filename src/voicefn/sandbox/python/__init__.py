"""Run customers' Python functions (hostile code) behind a real boundary.

Layers (see ``ISOLATION.md`` beside this file): bubblewrap namespaces (no files but /usr and a
few read-only packages, no network, no /proc), an unprivileged uid, a seccomp allow-list in every
invocation's process, rlimits, a wall-clock kill by the supervisor, and HTTP only through the
caller's ``egress`` callback::

    sandbox = PythonSandbox()
    await sandbox.start()          # SandboxUnavailable says what the host is missing
    outcome = await sandbox.run(code, "get_weather", {"location": "Pune"}, context,
                                egress=my_policy_checked_egress, tenant=agent_id)

``check()`` (for ``voicefn doctor``) says whether the sandbox works from this install, and when
it does not, which path or requirement failed and the fix.
"""

from .check import SandboxCheck, acheck, check
from .host import HostSupport, SandboxUnavailable, check_host
from .invocation import Egress, Limits, Outcome
from .supervisor import PythonSandbox

__all__ = [
    "Egress",
    "HostSupport",
    "Limits",
    "Outcome",
    "PythonSandbox",
    "SandboxCheck",
    "SandboxUnavailable",
    "acheck",
    "check",
    "check_host",
]
