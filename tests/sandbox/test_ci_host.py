"""In CI the sandbox must really run: a host that cannot isolate would make the escape suites
skip, and a green run would prove nothing. Locally (no CI=true) this check is skipped."""

from __future__ import annotations

import os

import pytest

from voicefn.sandbox.javascript import JavaScriptSandbox
from voicefn.sandbox.python import check_host

pytestmark = pytest.mark.skipif(os.environ.get("CI") != "true", reason="CI-only check")


def test_ci_host_isolates_python() -> None:
    support = check_host()
    assert support.full, support.describe()


async def test_ci_host_isolates_javascript() -> None:
    sandbox = JavaScriptSandbox(mode="isolated")
    try:
        await sandbox.start()  # raises SandboxUnavailable saying what is missing
    finally:
        await sandbox.aclose()
