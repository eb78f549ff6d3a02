"""The whole test command: lint, format check, type check, then the test suite.

Run through the bootstrap: ``./dev check`` (what CI runs via .ci/run). Extra arguments go to pytest.
"""

from __future__ import annotations

import os
import shutil
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


#: Debian packages the sandbox needs (see README, "Sandbox"). Installed when missing and root.
DEBIAN_PACKAGES = {
    "bubblewrap": "/usr/bin/bwrap",
    "python3-seccomp": None,
    "chromium": "/usr/bin/chromium",  # the dashboard's browser tests (Playwright drives it)
}


def _missing_packages() -> list[str]:
    missing = []
    for package, path in DEBIAN_PACKAGES.items():
        if path is not None:
            if not Path(path).exists():
                missing.append(package)
        elif subprocess.call(
            ["dpkg", "-s", package], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ):
            missing.append(package)
    return missing


def ensure_host_packages() -> None:
    missing = _missing_packages() if shutil.which("dpkg") else []
    if not missing:
        return
    if os.geteuid() != 0:
        print(
            f"== note: sandbox packages missing ({', '.join(missing)}); run as root or install them: "
            f"apt-get install {' '.join(missing)}. Sandbox tests will be skipped.",
            flush=True,
        )
        return
    print(f"== installing {' '.join(missing)} (apt-get)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.call(["apt-get", "update", "-qq"], env=env)
    run("apt-get", "apt-get", "install", "-y", "-qq", *missing)


def main() -> None:
    ensure_host_packages()
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
