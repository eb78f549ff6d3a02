"""The whole test command: lint, format check, type check, then the test suite.

Run through the bootstrap: ``./dev check`` (what CI runs via .ci/run). Extra arguments go to pytest.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(title: str, *cmd: str) -> None:
    print(f"== {title}: {' '.join(cmd)}", flush=True)
    code = subprocess.call(cmd, cwd=ROOT)
    if code != 0:
        print(f"== {title} failed (exit {code})", flush=True)
        sys.exit(code)


def main() -> None:
    run("ruff", str(BIN / "ruff"), "check", "src", "tests", "benchmarks", "examples", "scripts")
    run(
        "ruff format",
        str(BIN / "ruff"),
        "format",
        "--check",
        "src",
        "tests",
        "benchmarks",
        "examples",
        "scripts",
    )
    run("mypy", str(BIN / "mypy"))
    run("pytest", str(BIN / "pytest"), *sys.argv[1:])


if __name__ == "__main__":
    main()
