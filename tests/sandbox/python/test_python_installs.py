"""Issue 13: the Python sandbox starts wherever voicefn is installed.

Each test builds a real install in a temporary folder -- a venv in a 0700 home folder, a venv
reached through a symlinked folder, a venv in a world-readable folder, ``pip install --user``'s
user site -- with voicefn and the sandbox's packages as files inside it (copied from this tree
and this venv; no network), then runs one Python function through it in a subprocess started
with that install's python. As root (CI), the sandbox drops to ``nobody``, who cannot enter the
0700 folders: the sandbox must still work, and must not see more than before.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pysandbox_support import HOST, SKIP_REASON

import voicefn
from voicefn.sandbox.python import check
from voicefn.sandbox.python.host import SANDBOX_PACKAGES, run_as
from voicefn.sandbox.python.pool import Worker, WorkerConfig, WorkerError

pytestmark = [
    pytest.mark.skipif(not HOST.full, reason=SKIP_REASON),
    pytest.mark.skipif(os.geteuid() != 0, reason="builds installs the sandbox uid cannot read"),
]

PYVER = f"python{sys.version_info.major}.{sys.version_info.minor}"
#: this venv's site-packages: voicefn's other dependencies (pydantic, ...) come from here, AFTER
#: the install's own site dir (a plain path line in a .pth: its own .pth files are not read)
HOST_SITE = sysconfig.get_paths()["purelib"]

SCRIPT = r"""
import asyncio, json, sys
import httpx, voicefn
from voicefn.sandbox.python import PythonSandbox

CODE = '''
async def f(ctx: RunContext, x: int) -> dict:
    "Adds one."
    import httpx, os
    return {"y": x + 1, "httpx": httpx.__file__, "site": sorted(os.listdir("/sandbox/site"))}
'''

async def refuse(request):
    return {"error": "no egress"}

async def main():
    import os
    sandbox = PythonSandbox(warm_workers=1)
    outcome = await sandbox.run(CODE, "f", {"x": 41}, {}, egress=refuse, tenant="install")
    files = sandbox.files
    staged = None if files is None else files.staged
    await sandbox.aclose()
    print(json.dumps({
        "ok": outcome.ok, "value": outcome.value, "error": outcome.error,
        "detail": outcome.detail, "host_httpx": httpx.__file__,
        "host_voicefn": voicefn.__file__,
        "copied": None if files is None else files.reason,
        "staged": staged,
        "left": bool(staged) and os.path.exists(staged),
    }))

asyncio.run(main())
"""


def install_into(site: Path) -> None:
    """voicefn (this tree) and the sandbox's packages, as real files in ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    shutil.copytree(Path(voicefn.__file__).parent, site / "voicefn")
    for name in SANDBOX_PACKAGES:
        module = importlib.import_module(name)
        file = Path(module.__file__ or "")
        if file.name == "__init__.py":
            shutil.copytree(file.parent, site / name)
        else:
            shutil.copy2(file, site / file.name)
    (site / "zz_voicefn_deps.pth").write_text(HOST_SITE + "\n")


def make_venv(path: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=60
    )
    install_into(path / "lib" / PYVER / "site-packages")
    return path / "bin" / "python"


@pytest.fixture
def tmp_root() -> Iterator[Path]:
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"voicefn-install-test-{os.urandom(4).hex()}"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_function(python: Path | str, env: dict[str, str] | None = None) -> dict[str, object]:
    base = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent"}
    proc = subprocess.run(
        [str(python), "-c", SCRIPT],
        capture_output=True,
        timeout=120,
        env={**base, **(env or {})},
        cwd="/",
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    result: dict[str, object] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    assert result["left"] is False  # the copy is removed at aclose()
    return result


def assert_worked(result: dict[str, object], install: Path) -> None:
    assert result["ok"], result
    value = result["value"]
    assert isinstance(value, dict)
    assert value["y"] == 42
    # the host side really used this install, not the test's venv
    assert str(result["host_httpx"]).startswith(str(install)), result
    assert str(result["host_voicefn"]).startswith(str(install)), result
    # the sandbox sees exactly the same names as always: nothing widened
    assert value["httpx"] == "/sandbox/site/httpx/__init__.py"
    expected = sorted([*[n for n in SANDBOX_PACKAGES if n != "typing_extensions"], "sandboxed"])
    assert value["site"] == sorted([*expected, "typing_extensions.py"])


def test_a_venv_in_a_0700_home_folder(tmp_root: Path) -> None:
    home = tmp_root / "home"
    home.mkdir(mode=0o700)
    python = make_venv(home / "venv")
    result = run_function(python)
    assert_worked(result, home)
    assert "cannot read" in str(result["copied"])  # nobody cannot enter the home folder
    staged = Path(str(result["staged"]))
    assert staged.parent == Path(os.environ.get("TMPDIR", "/tmp"))


def test_a_venv_reached_through_a_symlinked_folder(tmp_root: Path) -> None:
    private = tmp_root / "private"
    private.mkdir(mode=0o700)
    make_venv(private / "venv")
    link = tmp_root / "link"
    link.symlink_to(private)
    result = run_function(link / "venv" / "bin" / "python")
    assert result["ok"], result
    assert_worked(result, private if "private" in str(result["host_httpx"]) else link)


def test_a_venv_in_a_world_readable_folder_is_used_in_place(tmp_root: Path) -> None:
    opt = tmp_root / "opt"
    opt.mkdir(mode=0o755)
    python = make_venv(opt / "venv")
    result = run_function(python)
    assert_worked(result, opt)
    assert result["copied"] is None  # readable by the sandbox uid: bound where it is


def test_pip_install_user_in_a_0700_home(tmp_root: Path) -> None:
    home = tmp_root / "home"
    home.mkdir(mode=0o700)
    user_site = home / ".local" / "lib" / PYVER / "site-packages"
    install_into(user_site)
    base_python = getattr(sys, "_base_executable", sys.executable)
    result = run_function(base_python, {"HOME": str(home)})
    assert_worked(result, home)
    assert "cannot read" in str(result["copied"])


def test_when_it_still_cannot_start_the_error_names_the_path_and_the_fix(tmp_root: Path) -> None:
    home = tmp_root / "home"
    home.mkdir(mode=0o700)
    python = make_venv(home / "venv")
    closed = tmp_root / "closed"  # the copy goes here, where the sandbox uid cannot go either
    closed.mkdir(mode=0o700)
    result = run_function(python, {"TMPDIR": str(closed)})
    assert not result["ok"]
    assert result["error"] == "unavailable"
    detail = str(result["detail"])
    assert str(home / "venv") in detail, detail  # the path that failed
    assert "cannot read" in detail
    assert "Fix:" in detail
    assert "BrokenPipeError" not in detail
    assert os.listdir(closed) == []  # the useless copy was removed


async def test_a_bind_source_the_uid_cannot_read_is_named_by_the_worker_error(
    tmp_path: Path,
) -> None:
    """Without the copy (a WorkerConfig made by hand), bubblewrap's refusal is explained."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    os.chmod(tmp_path, 0o755)
    package = private / "httpx"
    package.mkdir()
    (package / "__init__.py").write_text("")
    config = WorkerConfig(
        mode="isolated",
        bwrap=HOST.bwrap_path,
        python=HOST.python,
        uid=HOST.unprivileged_uid,
        packages=(("httpx", str(package)),),
        seccomp_module=HOST.seccomp_module,
    )
    assert run_as(HOST.unprivileged_uid).user is not None
    worker = Worker(config)
    with pytest.raises(WorkerError) as raised:
        await worker.start()
    message = str(raised.value)
    assert str(package) in message, message
    assert "Fix:" in message
    assert "BrokenPipeError" not in message


def test_check_reports_a_working_sandbox_from_this_install() -> None:
    report = check()
    assert report.works, report.describe()
    assert report.problem is None
    assert report.host is not None
    assert report.host.full
    assert dict(report.packages)["httpx"] == os.path.dirname(os.path.realpath(httpx.__file__))
    assert report.run_ms is not None
    assert report.run_ms > 0
    assert "works" in report.describe()
    assert report.to_dict()["works"] is True


def test_check_names_what_is_missing() -> None:
    report = check(python="/usr/bin/python3-not-installed")
    assert not report.works
    assert report.problem is not None
    assert "/usr/bin/python3-not-installed" in report.problem
    assert "DOES NOT WORK" in report.describe()
