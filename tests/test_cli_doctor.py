"""``voicefn doctor``: it starts both sandboxes for real and says whether they work."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from voicefn.cli import app
from voicefn.sandbox.python import check_host

pytestmark = pytest.mark.skipif(not check_host().full, reason="needs bubblewrap + user namespaces")

runner = CliRunner()


def test_doctor_reports_both_sandboxes_working_from_this_install():
    res = runner.invoke(app, ["doctor", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["ok"] is True
    assert report["install"] == sys.prefix
    assert report["python"]["works"] is True
    assert report["python"]["run_ms"] > 0
    assert {name for name, _ in report["python"]["packages"]} >= {"httpx", "sandboxed"}
    assert report["javascript"]["works"] is True
    assert report["javascript"]["problem"] is None


def test_doctor_in_words_names_each_sandbox_and_the_verdict():
    res = runner.invoke(app, ["doctor"])
    assert res.exit_code == 0, res.output
    assert "Python sandbox (isolated): works" in res.stdout
    assert "JavaScript sandbox (isolated): works" in res.stdout
    assert res.stdout.rstrip().endswith("both sandboxes work")


def test_doctor_in_unsafe_mode_says_it_isolates_no_tenant():
    res = runner.invoke(app, ["doctor", "--sandbox", "unsafe-process", "--json"])
    report = json.loads(res.stdout)
    notes = report["python"]["notes"] + report["javascript"]["notes"]
    assert any("NO isolation between tenants" in note for note in notes), notes
