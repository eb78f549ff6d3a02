"""Issue 13: the JavaScript sandbox starts wherever voicefn is installed.

Each test builds a real install in a temporary folder -- a venv in a 0700 home folder, a venv
reached through a symlinked folder, a venv in a world-readable folder, ``pip install --user``'s
user site -- with voicefn (this tree) as files inside it and the Deno binary where the PyPI
``deno`` wheel puts it (``<venv>/bin/deno``, ``~/.local/bin/deno``); voicefn's other
dependencies come from this venv through a ``.pth`` path line (no network). Then one JavaScript
function runs through it in a subprocess started with that install's python. As root (CI) the
tenant processes run as uid 65534, who cannot enter the 0700 folders: the sandbox must still
start, from a verified root-owned copy of exactly the files it binds, and see nothing more.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import voicefn
from voicefn.sandbox.javascript import check
from voicefn.sandbox.javascript._host import find_deno

pytestmark = [
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="builds installs the sandbox uid cannot read"),
]

PYVER = f"python{sys.version_info.major}.{sys.version_info.minor}"
HOST_SITE = sysconfig.get_paths()["purelib"]
SANDBOX_NAMES = [
    "deno",
    "host.js",
    "host.sock",
    "imports.json",
    "runtime",
    "vendor",
    "worker.js",
]

SCRIPT = r"""
import asyncio, json, os, sys
from pathlib import Path
import voicefn
from voicefn.sandbox.javascript import JavaScriptSandbox, SandboxUnavailable, _stage

if len(sys.argv) > 1:  # where staged copies may go (the failure test)
    _stage.STAGE_DIRS = tuple(Path(p) for p in sys.argv[1:])

CODE = '''async function main(d) {
  return {y: _.sum([d.x, 1]), day: moment.utc(0).format("YYYY-MM-DD"), axios: typeof axios.get};
}'''

async def refuse(request):
    return {"error": "no egress"}

def deno_pid(root):
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            if os.readlink(f"/proc/{pid}/exe").endswith("deno"):
                return pid
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as fh:
                    todo += [int(x) for x in fh.read().split()]
        except OSError:
            pass
    return None

async def main():
    sandbox = JavaScriptSandbox()
    try:
        await sandbox.start()
    except SandboxUnavailable as exc:
        print(json.dumps({"ok": False, "error": "unavailable", "detail": str(exc)}))
        return
    try:
        outcome = await sandbox.run(CODE, "main", {"x": 41}, egress=refuse, tenant="install")
        files = sandbox._config.files
        process = sandbox._processes[("install", 256)]
        pid = deno_pid(process.proc.pid)
        print(json.dumps({
            "ok": outcome.ok, "value": outcome.value, "error": outcome.error,
            "detail": outcome.detail, "host_voicefn": voicefn.__file__,
            "deno": files.deno, "host_js": files.host_js,
            "staged": None if files.staged is None else str(files.staged),
            "copied": files.reason,
            "sandbox": sorted(os.listdir(f"/proc/{pid}/root/sandbox")),
            "root": sorted(os.listdir(f"/proc/{pid}/root")),
        }))
    finally:
        await sandbox.aclose()

asyncio.run(main())
"""


def place_deno(target: Path) -> None:
    """The Deno binary where the ``deno`` wheel installs it (a hard link when possible)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    source = os.path.realpath(find_deno(None))
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def install_into(site: Path) -> None:
    """voicefn (this tree) as real files in ``site``; its dependencies from this venv."""
    site.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        Path(voicefn.__file__).parent, site / "voicefn", ignore=shutil.ignore_patterns("*.pyc")
    )
    (site / "zz_voicefn_deps.pth").write_text(HOST_SITE + "\n")


def make_venv(path: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=60
    )
    install_into(path / "lib" / PYVER / "site-packages")
    place_deno(path / "bin" / "deno")
    return path / "bin" / "python"


@pytest.fixture
def tmp_root() -> Iterator[Path]:
    root = Path("/tmp") / f"voicefn-js-install-test-{os.urandom(4).hex()}"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_function(
    python: Path | str, env: dict[str, str] | None = None, stage_dirs: list[str] | None = None
) -> dict[str, Any]:
    base = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent"}
    proc = subprocess.run(
        [str(python), "-c", SCRIPT, *(stage_dirs or [])],
        capture_output=True,
        timeout=180,
        env={**base, **(env or {})},
        cwd="/",
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    return result


def assert_worked(result: dict[str, Any], install: Path) -> None:
    assert result["ok"], result
    assert result["value"] == {"y": 42, "day": "1970-01-01", "axios": "function"}
    # the host side really used this install, not the test's venv
    assert str(result["host_voicefn"]).startswith(str(install)), result
    # the tenant process sees exactly what it always sees: nothing widened
    assert result["sandbox"] == SANDBOX_NAMES, result
    assert set(result["root"]) <= {"sandbox", "lib", "lib64", "usr", "proc"}, result


def assert_staged_safely(result: dict[str, Any], private: Path) -> None:
    assert "cannot read" in str(result["copied"]), result
    assert str(private) in str(result["copied"]), result
    staged = Path(result["staged"])
    assert result["deno"] == str(staged / "deno")
    assert result["host_js"] == str(staged / "host.js")
    for path in (staged, *staged.parents):
        info = path.stat()
        assert info.st_uid == 0, path
        assert not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or info.st_mode & stat.S_ISVTX
    for name in ("deno", "host.js", "worker.js", "vendor/axios.js"):
        info = (staged / name).stat()
        assert info.st_uid == 0
        assert not info.st_mode & 0o222, name  # read-only for everyone, root included
    assert sorted(p.name for p in staged.iterdir()) == [
        "deno",
        "host.js",
        "runtime",
        "vendor",
        "worker.js",
    ]


def test_a_venv_in_a_0700_home_folder(tmp_root: Path) -> None:
    home = tmp_root / "home"
    home.mkdir(mode=0o700)
    python = make_venv(home / "venv")
    result = run_function(python)
    assert_worked(result, home)
    assert_staged_safely(result, home)


def test_a_venv_reached_through_a_symlinked_folder(tmp_root: Path) -> None:
    private = tmp_root / "private"
    private.mkdir(mode=0o700)
    make_venv(private / "venv")
    link = tmp_root / "link"
    link.symlink_to(private)
    result = run_function(link / "venv" / "bin" / "python")
    assert_worked(result, link)
    assert_staged_safely(result, private)  # the real path is what the sandbox uid cannot read


def test_a_world_readable_venv_through_a_symlink_is_used_in_place(tmp_root: Path) -> None:
    opt = tmp_root / "opt"
    opt.mkdir(mode=0o755)
    python = make_venv(opt / "venv")
    link = tmp_root / "venv-link"
    link.symlink_to(opt / "venv")
    for launcher in (python, link / "bin" / "python"):
        result = run_function(launcher)
        assert_worked(result, opt if launcher == python else link)
        assert result["staged"] is None  # readable by the sandbox uid: bound where it is
        # real paths, not the symlinked ones
        assert result["deno"] == str(opt / "venv" / "bin" / "deno")
        assert result["host_js"].startswith(str(opt / "venv" / "lib"))


def test_pip_install_user_in_a_0700_home(tmp_root: Path) -> None:
    home = tmp_root / "home"
    home.mkdir(mode=0o700)
    install_into(home / ".local" / "lib" / PYVER / "site-packages")
    place_deno(home / ".local" / "bin" / "deno")
    base_python = getattr(sys, "_base_executable", sys.executable)
    result = run_function(base_python, {"HOME": str(home)})
    assert_worked(result, home)
    assert_staged_safely(result, home)
    assert result["deno"].endswith("/deno")


def test_when_it_still_cannot_start_the_error_names_the_path_and_the_fix(tmp_root: Path) -> None:
    home = tmp_root / "home"
    home.mkdir(mode=0o700)
    python = make_venv(home / "venv")
    # the only place a copy may go is not root's: it must not be used
    foreign = tmp_root / "foreign"
    foreign.mkdir(mode=0o755)
    os.chown(foreign, 65534, 65534)
    result = run_function(python, stage_dirs=[str(foreign / "stage")])
    assert not result["ok"]
    assert result["error"] == "unavailable"
    detail = str(result["detail"])
    assert str(home) in detail, detail  # the path that failed
    assert "cannot read" in detail
    assert "not owned by root" in detail
    assert "Fix:" in detail
    assert "Permission denied" not in detail  # not bubblewrap's bare refusal
    assert not (foreign / "stage").exists()


def test_check_reports_a_working_sandbox_from_this_install() -> None:
    report = check()
    assert report.works, report.describe()
    assert report.problem is None
    assert report.deno == os.path.realpath(find_deno(None))
    assert report.deno_version is not None
    assert report.deno_version.startswith("deno 2")
    assert report.sandbox_uid == 65534
    assert report.memory_layer in ("cgroup-memory", "rss-watchdog")
    assert report.cpu_layer in ("cgroup-cpu", "nice")
    assert report.run_ms is not None
    assert report.run_ms > 0
    assert "works" in report.describe()
    assert report.to_dict()["works"] is True


def test_check_names_what_is_missing() -> None:
    report = check(bwrap="/usr/bin/bwrap-not-installed")
    assert not report.works
    assert report.problem is not None
    assert "/usr/bin/bwrap-not-installed" in report.problem
    assert "apt-get install bubblewrap" in report.problem
    assert "DOES NOT WORK" in report.describe()


def test_a_staged_copy_is_made_fresh_verified_and_replaced_when_tampered(tmp_root: Path) -> None:
    home = tmp_root / "home"
    home.mkdir(mode=0o700)
    python = make_venv(home / "venv")
    stage = tmp_root / "stage"  # root-owned, under the sticky /tmp: acceptable
    first = run_function(python, stage_dirs=[str(stage)])
    assert_worked(first, home)
    staged = Path(first["staged"])
    assert staged.parent == stage
    assert_staged_safely(first, home)
    # Someone (root) weakened and edited the copy: it is not reused as it is.
    worker = staged / "worker.js"
    os.chmod(worker, 0o666)
    worker.write_text(worker.read_text().replace("scrubWorker();", "/* gone */"))
    second = run_function(python, stage_dirs=[str(stage)])
    assert_worked(second, home)
    assert second["staged"] == first["staged"]
    assert not worker.stat().st_mode & 0o222
    assert "scrubWorker();" in worker.read_text()
