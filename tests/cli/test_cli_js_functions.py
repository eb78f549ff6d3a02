"""``voicefn validate`` and ``invoke`` on JavaScript files, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voicefn.cli import app
from voicefn.sandbox.python import check_host

runner = CliRunner()


def test_validate_reports_a_syntax_error_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.js"
    path.write_text("async function broken(data) {\n  const x = {a: 1,, b: 2};\n  return x;\n}\n")
    res = runner.invoke(app, ["validate", str(path), "--json"])
    assert res.exit_code == 1
    (report,) = json.loads(res.stdout)
    (problem,) = report["problems"]
    assert "line 2" in json.dumps(problem)
    assert "(column 19)" in problem["message"]


def test_validate_refuses_an_unknown_setting_and_a_missing_module(tmp_path: Path) -> None:
    path = tmp_path / "f.js"
    path.write_text(
        "import extra from 'fs-extra';\n"
        "const __voicefn__ = { timout_ms: 1000 };\n"
        "async function f(data) { return extra; }\n"
    )
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 1
    assert "import of 'fs-extra'" in res.output
    assert "unknown __voicefn__ key 'timout_ms'" in res.output
    assert "did you mean 'timeout_ms'?" in res.output


@pytest.mark.skipif(not check_host().full, reason="needs bubblewrap + user namespaces")
def test_invoke_of_a_post_call_function_does_not_say_the_llm_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "summary.js"
    path.write_text(
        "/** Send the summary. */\n"
        "async function summary(data) {\n"
        "  return { status: 'success', who: data.variables.customer_name, x: data.x };\n"
        "}\n"
    )
    res = runner.invoke(
        app, ["invoke", str(path), "--args", '{"x": 1}', "--var", "customer_name=Ann"]
    )
    assert res.exit_code == 0, res.output
    assert "the LLM reads" not in res.output
    assert "post_call: no LLM reads it" in res.output
    assert '"who":"Ann"' in res.output
    assert '"x":1' in res.output
