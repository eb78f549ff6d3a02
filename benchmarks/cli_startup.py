"""How long ``voicefn`` takes to start, against Python importing what it needs anyway.

    python benchmarks/cli_startup.py [--runs N] [--json]

Each command runs as a fresh process (the installed ``voicefn`` script beside this Python), and so
does the baseline, ``python -c "import pydantic, httpx"``: the floor of any command that reads a
function. Runs are interleaved (baseline, then each command, N times) so drift affects all alike.
The children may write bytecode even where ``PYTHONDONTWRITEBYTECODE`` is set (an installed package
has its ``.pyc`` files; without them every run would compile each changed module again), and one
warm-up run of each command writes it and fills the file cache.
Two figures per command, medians: wall time, and the child's CPU time (user + system from
``os.wait4``'s rusage), which other load on a shared machine disturbs far less than wall time.
Ratios are against the baseline's median of the same figure. Target (issue 8): ``--help``,
``validate``, ``convert`` and ``from-curl`` under 300 ms on the project's 2-core machine. Printed
as information; the exit status is 0 whether or not the target is met (1 only if a command fails).
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import environment

ROOT = Path(__file__).resolve().parent.parent
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
FUNCTION = ROOT / "examples" / "functions" / "check_order_status.json"
VOICEFN = str(Path(sys.executable).parent / "voicefn")
TARGET_MS = 300.0

COMMANDS: dict[str, list[str]] = {
    "baseline: import pydantic, httpx": [sys.executable, "-c", "import pydantic, httpx"],
    "voicefn --help": [VOICEFN, "--help"],
    "voicefn validate": [VOICEFN, "validate", str(FUNCTION)],
    "voicefn validate, to a terminal": [VOICEFN, "validate", str(FUNCTION)],
    "voicefn convert --to openai": [VOICEFN, "convert", str(FUNCTION), "--to", "openai"],
    "voicefn from-curl": [VOICEFN, "from-curl", "curl https://api.example.com/orders?id=1"],
}


#: Rows whose stdout is a pseudo-terminal: there the CLI prints colour through rich (to a pipe
#: or a file a simple line skips rich; see voicefn/cli/_plain.py).
TERMINAL = {"voicefn validate, to a terminal"}


def timed(cmd: list[str], terminal: bool = False) -> tuple[float, float]:
    """Wall and CPU milliseconds of one run of ``cmd`` (output discarded)."""
    leader, follower = pty.openpty() if terminal else (-1, subprocess.DEVNULL)
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=ENV,
        stdout=follower,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stderr is not None
    errors = proc.stderr.read()  # the commands say little; reading to the end cannot block
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - started) * 1000
    if terminal:  # a line or two: it fits the terminal's buffer, so the child never waited
        os.close(follower)
        os.close(leader)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    proc.stderr.close()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {errors.decode()[:500]}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    wall: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpu: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for name, cmd in COMMANDS.items():  # write bytecode, warm the file cache
        timed(cmd, name in TERMINAL)
    for _ in range(opts.runs):
        for name, cmd in COMMANDS.items():
            w, c = timed(cmd, name in TERMINAL)
            wall[name].append(w)
            cpu[name].append(c)
    base = next(iter(COMMANDS))
    base_wall, base_cpu = statistics.median(wall[base]), statistics.median(cpu[base])
    rows = [
        {
            "command": name,
            "median_ms": round(statistics.median(wall[name]), 1),
            "min_ms": round(min(wall[name]), 1),
            "ratio": round(statistics.median(wall[name]) / base_wall, 2),
            "cpu_median_ms": round(statistics.median(cpu[name]), 1),
            "cpu_ratio": round(statistics.median(cpu[name]) / base_cpu, 2),
        }
        for name in COMMANDS
    ]
    if opts.json:
        print(json.dumps({"environment": environment(), "runs": opts.runs, "rows": rows}, indent=2))
        return
    print(
        f"{'command':32} {'wall':>9} {'min':>9} {'x base':>7} {'CPU':>9} {'x base':>7}"
        f"   (target < {TARGET_MS:.0f} ms; medians of {opts.runs})"
    )
    for row in rows:
        mark = (
            "" if row["command"] == base else ("  ok" if row["median_ms"] < TARGET_MS else "  over")
        )
        print(
            f"{row['command']:32} {row['median_ms']:7.1f}ms {row['min_ms']:7.1f}ms "
            f"{row['ratio']:6.2f}x {row['cpu_median_ms']:7.1f}ms {row['cpu_ratio']:6.2f}x{mark}"
        )


if __name__ == "__main__":
    main()
