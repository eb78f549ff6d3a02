"""The Worker threads of a tenant's Deno process, read from /proc (Deno names them ``worker-N``)."""

from __future__ import annotations

import os

from voicefn.sandbox.javascript._host import _tree


def worker_threads(root: int) -> dict[str, str]:
    """The Worker threads of the process tree below ``root``: ``pid/name`` -> state (R, S, ...)."""
    found: dict[str, str] = {}
    for pid in _tree(root):
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/comm", encoding="utf-8") as fh:
                    name = fh.read().strip()
                with open(f"/proc/{pid}/task/{task}/stat", encoding="ascii") as fh:
                    state = fh.read().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if name.startswith("worker-"):
                found[f"{pid}/{name}"] = state
    return found
