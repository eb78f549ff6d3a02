"""How long ``voicefn`` takes to start, against Python importing what it needs anyway.

    python benchmarks/cli_startup.py [--runs N] [--json]

Each command runs as a fresh process (the installed ``voicefn`` script beside this Python), and so
does the baseline, ``python -c "import pydantic, httpx"``: the floor of any command that reads a
function. Runs are interleaved (baseline, then each command, N times) so drift affects all alike;
the figures are medians of wall time. Target (issue 8): ``--help``, ``validate``, ``convert`` and
``from-curl`` under 300 ms on the project's 2-core machine. Printed as information; the exit
status is 0 whether or not the target is met (1 only if a command fails).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import environment

ROOT = Path(__file__).resolve().parent.parent
FUNCTION = ROOT / "examples" / "functions" / "check_order_status.json"
VOICEFN = str(Path(sys.executable).parent / "voicefn")
TARGET_MS = 300.0

COMMANDS: dict[str, list[str]] = {
    "baseline: import pydantic, httpx": [sys.executable, "-c", "import pydantic, httpx"],
    "voicefn --help": [VOICEFN, "--help"],
    "voicefn validate": [VOICEFN, "validate", str(FUNCTION)],
    "voicefn convert --to openai": [VOICEFN, "convert", str(FUNCTION), "--to", "openai"],
    "voicefn from-curl": [VOICEFN, "from-curl", "curl https://api.example.com/orders?id=1"],
}


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, cwd=ROOT)
    elapsed = (time.perf_counter() - started) * 1000
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[:500]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for cmd in COMMANDS.values():  # warm the file cache once
        timed(cmd)
    for _ in range(opts.runs):
        for name, cmd in COMMANDS.items():
            samples[name].append(timed(cmd))
    baseline = statistics.median(next(iter(samples.values())))
    rows = [
        {
            "command": name,
            "median_ms": round(statistics.median(values), 1),
            "min_ms": round(min(values), 1),
            "ratio": round(statistics.median(values) / baseline, 2),
        }
        for name, values in samples.items()
    ]
    if opts.json:
        print(json.dumps({"environment": environment(), "runs": opts.runs, "rows": rows}, indent=2))
        return
    print(
        f"{'command':36} {'median':>9} {'min':>9} {'x baseline':>11}   (target < {TARGET_MS:.0f} ms)"
    )
    for row in rows:
        mark = (
            ""
            if row["command"].startswith("baseline")
            else ("  ok" if row["median_ms"] < TARGET_MS else "  over")
        )
        print(
            f"{row['command']:36} {row['median_ms']:7.1f}ms {row['min_ms']:7.1f}ms "
            f"{row['ratio']:10.2f}x{mark}"
        )


if __name__ == "__main__":
    main()
