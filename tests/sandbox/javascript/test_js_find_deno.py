"""Finding the Deno binary from two threads at once (two sandboxes starting together) finds it
in both: the PyPI package's ``find_deno_bin()`` reads ``sysconfig``, whose first use in a
process is not thread-safe, so one of the two used to find nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from voicefn.sandbox.common import SandboxUnavailable
from voicefn.sandbox.javascript._host import find_deno

RACE = """
import asyncio
from voicefn.sandbox.javascript._host import find_deno

async def main():
    found = await asyncio.gather(*(asyncio.to_thread(find_deno, None) for _ in range(4)),
                                 return_exceptions=True)
    print(repr([type(f).__name__ if isinstance(f, Exception) else f for f in found]))

asyncio.run(main())
"""


def test_four_threads_of_a_fresh_process_all_find_deno() -> None:
    try:
        expected = find_deno(None)
    except SandboxUnavailable:
        pytest.skip("no Deno binary here")
    # each run is a fresh process: sysconfig's first use is what raced
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c", RACE], capture_output=True, text=True, timeout=60, check=True
        )
        assert out.stdout.strip() == repr([expected] * 4), out.stdout + out.stderr
