"""``import voicefn`` stays light, and every public name still imports on its own.

The names load when first used (PEP 562, ``voicefn/__init__.py``); these checks run in fresh
interpreters so that nothing this test process already imported hides a broken lazy name.
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict

import voicefn

#: A generous ceiling: ``import voicefn`` measured ~10 MB (the interpreter alone ~9 MB), against
#: ~33 MB for ``import pydantic, httpx`` (``benchmarks/import_footprint.py``); issue 10's target
#: is 40 MB.
IMPORT_RSS_CEILING_MB = 40


def run_python(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_every_public_name_has_a_home() -> None:
    lazy = set(voicefn._WHERE)
    assert lazy | {"__version__"} == set(voicefn.__all__)


def test_every_public_name_imports_in_a_fresh_interpreter() -> None:
    # one fresh process per module behind the names (started together): each module's names
    # are the first thing that process imports from voicefn
    by_module: dict[str, list[str]] = defaultdict(list)
    for name, module in voicefn._WHERE.items():
        by_module[module].append(name)
    procs = {}
    for module, names in sorted(by_module.items()):
        code = (
            f"from voicefn import {', '.join(names)}\n"
            f"import voicefn.{module} as m\n"
            f"assert all(v is getattr(m, n) for n, v in zip({names!r}, [{', '.join(names)}]))\n"
            "print('ok')"
        )
        procs[module] = run_python(code)
    failures = {}
    for module, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0 or out.strip() != "ok":
            failures[module] = err[-800:]
    assert not failures


def test_star_import_gives_exactly_all() -> None:
    code = (
        "before = set(globals())\n"
        "from voicefn import *\n"
        "print(sorted(set(globals()) - before - {'before'}))"
    )
    out, err = run_python(code).communicate(timeout=120)
    assert out.strip() == str(sorted(voicefn.__all__)), err[-800:]


def test_import_voicefn_stays_under_the_rss_ceiling() -> None:
    code = (
        "import voicefn\n"
        "print(next(int(line.split()[1]) for line in open('/proc/self/status')"
        " if line.startswith('VmRSS:')))"
    )
    out, err = run_python(code).communicate(timeout=120)
    rss_mb = int(out) / 1024
    assert 0 < rss_mb < IMPORT_RSS_CEILING_MB, err[-800:]
