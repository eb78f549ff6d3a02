"""`voicefn call`: the text call simulator, scripted, against a scripted LLM and real servers."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from voicefn.cli import app
from voicefn.testing import Reply, ScriptedLLM, text, tool_call
from voicefn.testing.twilio_server import FakeTwilio

from servers import running_server

runner = CliRunner()


def write_agent(tmp_path: Path, llm: ScriptedLLM, server_url: str) -> Path:
    (tmp_path / "fns").mkdir()
    (tmp_path / "fns" / "order.json").write_text(
        json.dumps(
            {
                "name": "check_order_status",
                "description": "Look up an order",
                "pre_call_message": "Let me check that order.",
                "parameters": {
                    "type": "object",
                    "properties": {"order_id": {"type": "string", "description": "Order ID"}},
                    "required": ["order_id"],
                },
                "key": "custom_task",
                "value": {
                    "method": "GET",
                    "url": f"{server_url}/echo",
                    "param": {"order_id": "%(order_id)s"},
                    "api_token": "Bearer sk_SIM_SECRET",
                },
            }
        )
    )
    agent = {
        "name": "sim",
        "system_prompt": "You are Sam, talking to {customer_name}.",
        "welcome_message": "Hi {customer_name}!",
        "variables": {"customer_name": "there"},
        "llm": {"model": "scripted", "base_url": llm.base_url, "max_retries": 0},
        "functions": [
            "fns/order.json",
            {
                "name": "transfer_to_human",
                "description": "Transfer to a human",
                "parameters": {
                    "type": "object",
                    "properties": {"reason": {"type": "string", "description": "why"}},
                },
                "action": {
                    "type": "builtin",
                    "builtin": "transfer_call",
                    "transfer_number": "+14155550100",
                },
            },
        ],
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(agent))
    return path


def test_scripted_call_prints_transcript_and_json_summary(tmp_path):
    with ScriptedLLM() as llm, running_server() as api:
        llm.push(
            Reply(tool_calls=[tool_call("check_order_status", {"order_id": "ORD-7"})]),
            text("It has shipped, Bruce."),
            Reply(tool_calls=[tool_call("transfer_to_human", {"reason": "wants a person"})]),
        )
        agent = write_agent(tmp_path, llm, api.url)
        script = tmp_path / "script.txt"
        script.write_text("Where is ORD-7?\n\nI want a person.\nThis line is never reached.\n")
        res = runner.invoke(
            app,
            [
                "call",
                str(agent),
                "--script",
                str(script),
                "--json",
                "--allow-private-network",
                "--var",
                "customer_name=Bruce",
                "--var",
                "call_sid=CA77",
            ],
        )
        assert res.exit_code == 0, res.output
        summary = json.loads(res.stdout)
        assert api.received[0].query == {"order_id": ["ORD-7"]}
        assert llm.requests[0]["messages"][0]["content"] == "You are Sam, talking to Bruce."
    assert summary["turns"] == 2
    assert summary["ended"] is True
    lines = summary["transcript"]
    assert lines[0] == {"speaker": "agent", "text": "Hi Bruce!"}
    assert {"speaker": "agent", "text": "Let me check that order.", "filler": True} in lines
    assert {"speaker": "agent", "text": "It has shipped, Bruce."} in lines
    assert {"event": "transfer", "number": "+14155550100", "reason": "wants a person"} in lines
    execution = summary["executions"][0]
    assert execution["function"] == "check_order_status"
    assert execution["ok"] is True
    assert execution["timings"]["request_ms"] > 0
    assert "sk_SIM_SECRET" not in res.stdout


def test_human_transcript_shows_function_calls(tmp_path):
    with ScriptedLLM() as llm, running_server() as api:
        llm.push(
            Reply(tool_calls=[tool_call("check_order_status", {"order_id": "ORD-7"})]),
            text("Shipped."),
        )
        agent = write_agent(tmp_path, llm, api.url)
        script = tmp_path / "s.txt"
        script.write_text("Where is ORD-7?\n")
        res = runner.invoke(
            app, ["call", str(agent), "--script", str(script), "--allow-private-network"]
        )
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "you> Where is ORD-7?" in out
    assert "agent (filler): Let me check that order." in out
    assert "→ check_order_status" in out
    assert f"GET {api.url}/echo?order_id=ORD-7" in out
    assert "← check_order_status ok 200" in out
    assert "Shipped." in out


def test_twilio_carries_out_the_transfer(tmp_path, monkeypatch):
    with ScriptedLLM() as llm, running_server() as api, FakeTwilio() as twilio:
        llm.push(Reply(tool_calls=[tool_call("transfer_to_human", {"reason": "human"})]))
        agent = write_agent(tmp_path, llm, api.url)
        script = tmp_path / "s.txt"
        script.write_text("Give me a human\n")
        monkeypatch.setenv("TWILIO_ACCOUNT_SID", twilio.account_sid)
        monkeypatch.setenv("TWILIO_AUTH_TOKEN", twilio.auth_token)
        monkeypatch.setenv("TWILIO_API_BASE_URL", twilio.base_url)
        res = runner.invoke(
            app,
            [
                "call",
                str(agent),
                "--script",
                str(script),
                "--twilio",
                "--var",
                "call_sid=CA0123456789abcdef0123456789abcdef",
                "--json",
            ],
        )
        assert res.exit_code == 0, res.output
        calls = [r for r in twilio.requests if "/Calls/" in r.path]
    assert len(calls) == 1
    assert calls[0].path.endswith("/Calls/CA0123456789abcdef0123456789abcdef.json")
    assert "+14155550100" in calls[0].form["Twiml"]


def test_invalid_agent_lists_problems(tmp_path):
    bad = tmp_path / "agent.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "name": "x",
                "llm": {"model": "m"},
                "functions": [
                    {
                        "name": "bad name",
                        "action": {"type": "http", "method": "GET", "url": "https://x.example"},
                    }
                ],
            }
        )
    )
    res = runner.invoke(app, ["call", str(bad), "--script", "/dev/null"])
    assert res.exit_code == 1
    assert "$.functions[0].name" in res.output
    assert "$.functions[0].description" in res.output


def test_json_keeps_words_said_with_a_tool_call(tmp_path):
    with ScriptedLLM() as llm, running_server() as api:
        llm.push(
            Reply(
                text="Sure, one moment.",
                tool_calls=[tool_call("check_order_status", {"order_id": "ORD-7"})],
            ),
            text("It has shipped."),
        )
        agent = write_agent(tmp_path, llm, api.url)
        script = tmp_path / "s.txt"
        script.write_text("Where is ORD-7?\n")
        res = runner.invoke(
            app,
            ["call", str(agent), "--script", str(script), "--json", "--allow-private-network"],
        )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["errors"] == 0
    agent_lines = [line["text"] for line in summary["transcript"] if line.get("speaker") == "agent"]
    assert agent_lines == ["Hi there!", "Sure, one moment.", "It has shipped."]


def test_a_failed_turn_makes_the_call_exit_non_zero_and_the_call_goes_on(tmp_path):
    from voicefn.testing import RawReply

    with ScriptedLLM() as llm, running_server() as api:
        # A stream cut mid-line (no openai.APIError): the turn fails, the next one answers.
        llm.push(
            RawReply.sse(b'data: {"choices":[{"index":0,"delta":{"content":"Hel\n\n'),
            text("Hello again."),
        )
        agent = write_agent(tmp_path, llm, api.url)
        script = tmp_path / "s.txt"
        script.write_text("hi\nhello?\n")
        res = runner.invoke(
            app,
            ["call", str(agent), "--script", str(script), "--json", "--allow-private-network"],
        )
        llm.push(
            RawReply.sse(b'data: {"choices":[{"index":0,"delta":{"content":"Hel\n\n'),
            text("Hello again."),
        )
        human = runner.invoke(
            app, ["call", str(agent), "--script", str(script), "--allow-private-network"]
        )
    assert res.exit_code == 1, res.output
    summary = json.loads(res.stdout)
    assert summary["errors"] == 1
    lines = summary["transcript"]
    error = next(line for line in lines if line.get("event") == "error")
    assert error["message"] == "the turn failed"
    assert {"speaker": "agent", "text": "Hello again."} in lines
    assert lines.index(error) < lines.index({"speaker": "agent", "text": "Hello again."})
    assert human.exit_code == 1
    assert "error: the turn failed" in human.stdout
    assert "Hello again." in human.stdout
    assert "the call had 1 error(s)" in human.stderr
