"""How much memory ``import voicefn`` costs, against Python importing what it needs anyway.

    python benchmarks/import_footprint.py [--runs N] [--json]

Each row is a fresh process (this Python) that runs one import statement and then reports its
resident set (``VmRSS``, what the process holds now; ``VmHWM``, its peak) and how many modules it
loaded. Rows: a bare interpreter, the baseline ``import pydantic, httpx`` (what any command that
reads a function loads), ``import voicefn`` (names load when first used, PEP 562), a few names
their users import, and every name in ``voicefn.__all__``. Runs are interleaved (each row once,
N times) so drift affects all alike; figures are medians. Target (issue 10): ``import voicefn``
under 40 MB RSS. Printed as information; the exit status is 0 whether or not the target is met
(1 only if an import fails).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from typing import Any

from _common import environment

TARGET_MB = 40.0
ROWS: dict[str, str] = {
    "bare interpreter": "pass",
    "baseline: import pydantic, httpx": "import pydantic, httpx",
    "import voicefn": "import voicefn",
    "from voicefn import Function": "from voicefn import Function",
    "from voicefn import Executor": "from voicefn import Executor",
    "from voicefn import CallSession": "from voicefn import CallSession",
    "from voicefn import * (every name)": "from voicefn import *",
}
REPORT = """
import sys
def _status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(_status("VmRSS"), _status("VmHWM"), len(sys.modules))
"""


def measure(statement: str) -> tuple[float, float, int]:
    """(RSS MB, peak RSS MB, modules) of a fresh process after ``statement``."""
    proc = subprocess.run(
        [sys.executable, "-c", statement + "\n" + REPORT], capture_output=True, text=True
    )
    if proc.returncode != 0:
        sys.exit(f"{statement!r} failed ({proc.returncode}): {proc.stderr[-500:]}")
    rss, peak, modules = proc.stdout.split()
    return float(rss), float(peak), int(modules)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    if opts.runs < 1:
        parser.error("--runs must be at least 1")
    samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in ROWS}
    for _ in range(opts.runs):
        for name, statement in ROWS.items():
            samples[name].append(measure(statement))
    baseline = statistics.median(s[0] for s in samples["baseline: import pydantic, httpx"])
    rows: list[dict[str, Any]] = [
        {
            "import": name,
            "rss_mb": round(statistics.median(s[0] for s in values), 1),
            "peak_rss_mb": round(statistics.median(s[1] for s in values), 1),
            "modules": int(statistics.median(s[2] for s in values)),
            "ratio": round(statistics.median(s[0] for s in values) / baseline, 2),
        }
        for name, values in samples.items()
    ]
    voicefn_mb = float(next(r["rss_mb"] for r in rows if r["import"] == "import voicefn"))
    if opts.json:
        data = {
            "environment": environment(),
            "runs": opts.runs,
            "target_mb": TARGET_MB,
            "target_met": voicefn_mb < TARGET_MB,
            "rows": rows,
        }
        print(json.dumps(data, indent=2))
        return
    print(f"{'import':36} {'RSS':>8} {'peak':>8} {'modules':>8} {'x baseline':>11}")
    for row in rows:
        print(
            f"{row['import']:36} {row['rss_mb']:6.1f}MB {row['peak_rss_mb']:6.1f}MB "
            f"{row['modules']:8d} {row['ratio']:10.2f}x"
        )
    met = "met" if voicefn_mb < TARGET_MB else "NOT met"
    print(f"target: import voicefn < {TARGET_MB:.0f} MB RSS: {met} ({voicefn_mb:.1f} MB)")


if __name__ == "__main__":
    main()
