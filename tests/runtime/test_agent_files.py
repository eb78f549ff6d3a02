"""Agent files: every problem in the path / found / fix form, with did-you-mean, and what the LLM
sees for a whole agent (``voicefn tools``) equal to what a call sends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from voicefn.cli import app
from voicefn.runtime.agent import load_agent, validate_agent
from voicefn.testing import ScriptedLLM, text
from voicefn.validation import FunctionValidationError

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

ORDER = {
    "name": "check_order_status",
    "description": "Use when the caller asks where their order is.",
    "parameters": {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "description": "The order ID"},
            "from_number": {"type": "string", "description": "The caller's number"},
        },
        "required": ["order_id", "from_number"],
    },
    "action": {"method": "GET", "url": "https://api.example.com/orders"},
}


def agent_file(tmp_path: Path, doc: dict[str, Any], name: str = "agent.yaml") -> Path:
    (tmp_path / "fns").mkdir(exist_ok=True)
    (tmp_path / "fns" / "order.json").write_text(json.dumps(ORDER))
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc) if name.endswith(".yaml") else json.dumps(doc))
    return path


def problems(path: Path, *args: str) -> dict[str, dict[str, Any]]:
    res = runner.invoke(app, ["validate", str(path), "--json", *args])
    [report] = json.loads(res.stdout)
    assert report["kind"] == "agent"
    return {p["path"]: p for p in report["problems"]}


def test_validate_checks_an_agent_and_every_function_in_it(tmp_path: Path) -> None:
    path = agent_file(tmp_path, {"name": "a", "functions": ["fns/order.json", {"name": "x"}]})
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 1
    assert "cannot tell which dialect" in res.output
    assert res.output.count("cannot tell which dialect") == 1  # the embedded document only
    assert "ok fns/order.json: check_order_status (voicefn)" in res.output
    assert "$.functions[1]" in res.output
    ok = agent_file(tmp_path, {"name": "a", "functions": ["fns/order.json"]})
    good = runner.invoke(app, ["validate", str(ok)])
    assert good.exit_code == 0, good.output
    assert "agent a (1 function)" in good.output


def test_unknown_keys_and_bad_llm_values_say_what_to_write(tmp_path: Path) -> None:
    path = agent_file(
        tmp_path,
        {
            "name": "a",
            "sytem_prompt": "Hi",
            "model": "gpt-4o-mini",
            "llm": {
                "temprature": 0.2,
                "base_url": "localhost:11434",
                "max_tool_rounds": 0,
                "api_key": "sk-live",
            },
        },
    )
    found = problems(path)
    assert found["$.sytem_prompt"]["fix"] == "did you mean 'system_prompt'?"
    assert "move it under llm" in found["$.model"]["fix"]
    assert found["$.llm.temprature"]["fix"] == "did you mean 'temperature'?"
    assert found["$.llm.base_url"]["found"] == "localhost:11434"
    assert "absolute" in found["$.llm.base_url"]["message"]
    assert found["$.llm.max_tool_rounds"]["fix"] == "use a number at least 1"
    assert "api_key_env" in found["$.llm.api_key"]["fix"]
    assert "sk-live" not in json.dumps(found)


def test_a_tab_in_yaml_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("name: a\nllm:\n\tmodel: x\n")
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 1
    assert "a tab character at line 3, column 1" in res.output
    assert "replace the tab with spaces" in res.output
    assert "Traceback" not in res.output
    with pytest.raises(FunctionValidationError) as caught:
        load_agent(path)
    assert caught.value.source == str(path)


def test_missing_function_file_shows_its_index_and_resolved_path(tmp_path: Path) -> None:
    path = agent_file(tmp_path, {"functions": ["fns/order.json", "fns/ordr.json", "nope.json"]})
    found = problems(path)
    near = found["$.functions[1]"]
    assert str((tmp_path / "fns" / "ordr.json").resolve()) in near["message"]
    assert near["fix"] == f"did you mean {(tmp_path / 'fns' / 'order.json').resolve()}?"
    assert near["found"] == "fns/ordr.json"
    far = found["$.functions[2]"]
    assert "relative to the agent file's folder" in far["fix"]


def test_a_string_where_a_list_is_expected(tmp_path: Path) -> None:
    path = agent_file(tmp_path, {"functions": "fns/order.json"})
    found = problems(path)
    assert "must be a list, not a string" in found["$.functions"]["message"]
    assert found["$.functions"]["fix"] == "write it as a list: functions: [fns/order.json]"
    assert "No such file" not in json.dumps(found)


def test_json_syntax_error_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "agent.json"
    path.write_text('{"name": "a",\n "functions": [}\n')
    res = runner.invoke(app, ["validate", str(path), "--json"])
    assert res.exit_code == 1
    [report] = json.loads(res.stdout)
    assert report["source"] == str(path)
    assert "not valid JSON at line 2, column 16" in report["problems"][0]["message"]
    bad_fn = tmp_path / "fns"
    bad_fn.mkdir()
    (bad_fn / "f.json").write_text("{'name': 'x'}")
    agent = tmp_path / "agent2.json"
    agent.write_text(json.dumps({"functions": ["fns/f.json"]}))
    [report] = json.loads(runner.invoke(app, ["validate", str(agent), "--json"]).stdout)
    [fn] = report["functions"]
    assert fn["source"] == "fns/f.json"
    assert "double quotes" in fn["problems"][0]["fix"]


def test_unknown_variable_in_prompt_or_welcome_is_a_warning(tmp_path: Path) -> None:
    path = agent_file(
        tmp_path,
        {
            "system_prompt": "You talk to {custmer_name} ({from_number}).",
            "welcome_message": "Hi {customer_name}, order {order_ref}?",
            "variables": {"customer_name": "there"},
        },
    )
    res = runner.invoke(app, ["validate", str(path), "--json"])
    assert res.exit_code == 0
    [report] = json.loads(res.stdout)
    by_path = {p["path"]: p for p in report["problems"]}
    assert by_path["$.system_prompt"]["severity"] == "warning"
    assert by_path["$.system_prompt"]["fix"].startswith("did you mean {customer_name}?")
    assert by_path["$.welcome_message"]["found"] == "{order_ref}"
    declared = problems(path, "--var", "order_ref=A1")
    assert "$.welcome_message" not in declared


def test_yaml_booleans_hint_to_quote(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("name: a\nlanguage: no\n")
    found = problems(path)
    assert found["$.language"]["found"] is False
    assert 'quote it ("no")' in found["$.language"]["fix"]


def test_agent_errors_reach_call_in_the_same_form(tmp_path: Path) -> None:
    path = agent_file(tmp_path, {"llm": {"temprature": 1}})
    res = runner.invoke(app, ["call", str(path), "--json"])
    assert res.exit_code == 1
    out = json.loads(res.stdout)
    assert out["ok"] is False
    assert out["problems"][0]["fix"] == "did you mean 'temperature'?"


def test_tools_prints_exactly_what_a_call_sends(tmp_path: Path) -> None:
    doc = {
        "name": "store",
        "system_prompt": "You are Sam, talking to {customer_name} on {to_number}.",
        "welcome_message": "Hi {customer_name}!",
        "variables": {"customer_name": "there"},
        "functions": [
            "fns/order.json",
            {
                "name": "hang_up",
                "description": "End the call when the caller is done",
                "action": {"type": "builtin", "builtin": "end_call"},
            },
        ],
    }
    path = agent_file(tmp_path, doc)
    args = ["--var", "customer_name=Priya", "--var", "from_number=+15550100"]
    shown = runner.invoke(app, ["tools", str(path), "--json", *args])
    assert shown.exit_code == 0, shown.output
    view = json.loads(shown.stdout)
    assert view["system_prompt"] == "You are Sam, talking to Priya on {to_number}."
    assert view["welcome_message"] == "Hi Priya!"
    order = view["tools"][0]["function"]
    assert "from_number" not in order["parameters"]["properties"]  # the context fills it
    with ScriptedLLM() as llm:
        llm.push(text("Sure."))
        call = runner.invoke(
            app,
            ["call", str(path), "--base-url", llm.base_url, "--model", "m", "--json", *args],
            input="hello\n",
        )
        assert call.exit_code == 0, call.output
        sent = llm.requests[0]
    assert sent["messages"][0] == {"role": "system", "content": view["system_prompt"]}
    assert sent["messages"][1] == {"role": "assistant", "content": view["welcome_message"]}
    assert sent["tools"] == view["tools"]
    anthropic = json.loads(
        runner.invoke(app, ["tools", str(path), "--to", "anthropic", "--json"]).stdout
    )
    assert [t["name"] for t in anthropic["tools"]] == ["check_order_status", "hang_up"]
    assert "input_schema" in anthropic["tools"][0]
    human = runner.invoke(app, ["tools", str(path)])
    assert "system prompt" in human.output
    assert "tools (2, openai format)" in human.output
    bad = runner.invoke(app, ["tools", str(path), "--to", "bolna"])
    assert bad.exit_code == 2


def test_the_example_agent_loads_and_every_documented_key_is_in_the_readme() -> None:
    from voicefn.runtime.agent import AGENT_KEYS, LLM_KEYS

    agent = load_agent(EXAMPLES / "store_agent.yaml")
    assert [f.name for f in agent.functions][:2] == ["check_order_status", "book_appointment"]
    readme = (EXAMPLES.parent / "README.md").read_text()
    section = readme[readme.index("### Agent files") :]
    section = section[: section.index("\n## ")]
    for key in AGENT_KEYS:
        assert f"`{key}`" in section, key
    for key in LLM_KEYS:
        assert f"`llm.{key}`" in section, key


def test_validate_agent_never_raises_and_reports_unreadable_files(tmp_path: Path) -> None:
    report = validate_agent(tmp_path / "missing.yaml")
    assert report.agent is None
    assert "cannot read file" in report.problems[0].message
    assert str((tmp_path / "missing.yaml").resolve()) in report.problems[0].message
