"""Host facts the function must not learn: the kernel version, uptime, load, memory, disks.

The seccomp filter refuses ``uname``, ``sysinfo``, ``statfs`` and ``fstatfs`` (EPERM) in every
child. So that ordinary code keeps working, :func:`hide_host_facts` (run in the zygote after the
warm-up, before anything is forked) replaces :func:`os.uname` with a fixed, fake answer and
empties the cache ``platform`` filled during the imports (it would still hold the real one).
``os.statvfs``/``shutil.disk_usage`` raise ``PermissionError``; ``os.sysconf("SC_PHYS_PAGES")``
is meaningless. The hostname is the UTS namespace's own (``sandbox``).
"""

from __future__ import annotations

import os
import sys

#: What ``os.uname()`` says inside the sandbox (the machine is x86_64: the filter is x86-64 only).
FAKE_UNAME = os.uname_result(("Linux", "sandbox", "sandbox", "#1 sandbox", "x86_64"))


def _uname() -> os.uname_result:
    """``os.uname()`` in the sandbox: a fixed answer, never the host's kernel."""
    return FAKE_UNAME


def hide_host_facts() -> None:
    os.uname = _uname
    platform = sys.modules.get("platform")
    if platform is not None:
        # platform.uname() caches os.uname()'s first answer (the real one, from the warm-up)
        platform._uname_cache = None  # type: ignore[attr-defined]
