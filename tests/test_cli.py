"""The CLI as a user runs it: real files, a real server on 127.0.0.1, typer's runner in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voicefn.cli import app

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "functions"
runner = CliRunner()

BOLNA = {
    "name": "check_order_status",
    "description": "Use when the caller asks where their order is.",
    "pre_call_message": "Let me check.",
    "parameters": {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "description": "Order ID"},
            "from_number": {"type": "string", "description": "Caller phone"},
        },
        "required": ["order_id", "from_number"],
    },
    "key": "custom_task",
    "value": {
        "method": "GET",
        "param": {"order_id": "%(order_id)s", "phone": "%(from_number)s"},
        "url": "https://api.example.com/orders",
        "api_token": "Bearer sk_live_TOPSECRET",
        "headers": {"X-Source": "voice"},
    },
}


def write(tmp_path: Path, doc: object, name: str = "fn.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(doc), encoding="utf-8")
    return p


def test_validate_ok_and_errors(tmp_path):
    good = write(tmp_path, BOLNA, "good.json")
    bad_doc = json.loads(json.dumps(BOLNA))
    bad_doc["name"] = "check order"
    bad_doc["value"]["param"]["order_id"] = "%(orderid)s"
    bad_doc["key"] = "task"
    bad = write(tmp_path, bad_doc, "bad.json")
    ok = runner.invoke(app, ["validate", str(good)])
    assert ok.exit_code == 0, ok.output
    assert "ok" in ok.output
    assert "check_order_status (bolna)" in ok.output
    res = runner.invoke(app, ["validate", str(good), str(bad), "--json"])
    assert res.exit_code == 1
    reports = json.loads(res.output)
    assert [r["valid"] for r in reports] == [True, False]
    paths = {p["path"] for p in reports[1]["problems"] if p["severity"] == "error"}
    assert paths == {"$.name", "$.value.param.order_id", "$.key"}
    fixes = " ".join(p["fix"] for p in reports[1]["problems"])
    assert "did you mean %(order_id)s" in fixes


def test_validate_unreadable_and_malformed_files(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    res = runner.invoke(app, ["validate", str(broken), str(tmp_path / "missing.json")])
    assert res.exit_code == 1
    assert "not valid JSON" in res.output
    assert "cannot read file" in res.output


def test_convert_to_llm_dialect_hides_configuration_and_context_params(tmp_path):
    src = write(tmp_path, BOLNA)
    res = runner.invoke(
        app, ["convert", str(src), "--to", "anthropic", "--var", "from_number=+1555"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["input_schema"]["required"] == ["order_id"]
    assert "from_number" not in doc["input_schema"]["properties"]
    for secret in ("api.example.com", "sk_live", "X-Source", "%("):
        assert secret not in res.output


def test_convert_warns_about_what_a_dialect_cannot_carry(tmp_path):
    res = runner.invoke(app, ["convert", str(write(tmp_path, BOLNA)), "--to", "call2me"])
    assert res.exit_code == 0
    assert "api_token" in res.stderr
    assert json.loads(res.stdout)["speak_during_execution"] == "Let me check."


def test_convert_rejects_unknown_dialect(tmp_path):
    res = runner.invoke(app, ["convert", str(write(tmp_path, BOLNA)), "--to", "vapi"])
    assert res.exit_code == 2
    assert "bolna" in res.output


def test_convert_round_trip_through_every_loadable_dialect(tmp_path):
    doc = json.loads(json.dumps(BOLNA))
    doc["value"]["param"] = {"order_id": "%(order_id)s", "from_number": "%(from_number)s"}
    doc["value"]["headers"] = {}
    current = write(tmp_path, doc)
    for dialect in ("voicefn", "bolna"):
        res = runner.invoke(app, ["convert", str(current), "--to", dialect])
        assert res.exit_code == 0, res.output
        current = write(tmp_path, json.loads(res.stdout), f"{dialect}.json")
    assert json.loads(current.read_text())["value"] == doc["value"]


def test_invoke_prints_redacted_request_and_result(server, tmp_path):
    doc = json.loads(json.dumps(BOLNA))
    doc["value"]["url"] = f"{server.url}/echo"
    fn = write(tmp_path, doc)
    res = runner.invoke(
        app,
        [
            "invoke",
            str(fn),
            "--args",
            '{"order_id": "ORD-1"}',
            "--var",
            "from_number=+1555",
            "--allow-private-network",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["ok"] is True
    assert out["request"]["headers"]["Authorization"] == "[redacted]"
    assert "TOPSECRET" not in res.output
    assert server.received[-1].query == {"order_id": ["ORD-1"], "phone": ["+1555"]}
    assert server.received[-1].headers["Authorization"] == "Bearer sk_live_TOPSECRET"
    human = runner.invoke(
        app,
        [
            "invoke",
            str(fn),
            "--args",
            '{"order_id": "ORD-2"}',
            "--var",
            "from_number=+1",
            "--allow-private-network",
        ],
    )
    assert human.exit_code == 0
    assert "the LLM reads" in human.output
    assert "[redacted]" in human.output
    assert "TOPSECRET" not in human.output


def test_invoke_refuses_loopback_by_default_and_exits_1(server, tmp_path):
    doc = json.loads(json.dumps(BOLNA))
    doc["value"]["url"] = f"{server.url}/echo"
    res = runner.invoke(
        app,
        [
            "invoke",
            str(write(tmp_path, doc)),
            "--args",
            '{"order_id": "1", "from_number": "2"}',
            "--json",
        ],
    )
    assert res.exit_code == 1
    assert json.loads(res.stdout)["data"]["reason"] == "blocked"
    assert server.received == []


def test_invoke_allow_list_entry_opens_one_address(server, tmp_path):
    doc = json.loads(json.dumps(BOLNA))
    doc["value"]["url"] = f"{server.url}/echo"
    fn = str(write(tmp_path, doc))
    args = ["invoke", fn, "--args", '{"order_id": "1", "from_number": "2"}', "--json"]
    assert runner.invoke(app, [*args, "--allow", "127.0.0.1/32"]).exit_code == 0
    bad = runner.invoke(app, [*args, "--allow", "not a cidr/99"])
    assert bad.exit_code == 2
    assert "not a cidr/99" in bad.output


def test_invoke_invalid_function_lists_problems(tmp_path):
    doc = json.loads(json.dumps(BOLNA))
    doc["value"]["method"] = "FETCH"
    res = runner.invoke(app, ["invoke", str(write(tmp_path, doc)), "--args", "{}"])
    assert res.exit_code == 1
    assert "$.value.method" in res.output


def test_var_requires_key_value(tmp_path):
    res = runner.invoke(app, ["invoke", str(write(tmp_path, BOLNA)), "--var", "oops"])
    assert res.exit_code == 2
    assert "key=value" in res.output


def test_examples_validate():
    files = sorted(str(p) for p in EXAMPLES.iterdir())
    assert len(files) >= 2
    res = runner.invoke(app, ["validate", *files])
    assert res.exit_code == 0, res.output


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell script")
def test_quickstart_runs_as_documented():
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["sh", str(ROOT / "examples" / "quickstart.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"status": "shipped"' in proc.stdout
    assert "missing_arguments" in proc.stdout
    assert '"booking_id": "APT-1001"' in proc.stdout
    assert "demo-token" not in proc.stdout


SEED_CURL = """curl --location 'https://api.yourbank.com/accounts/balance?account_id=ACC-991042&phone=%2B919876543210' \\
--header 'Authorization: Bearer fin_api_key_001' \\
--header 'X-Request-Source: voice-agent'"""


def test_from_curl_to_bolna_by_default_and_other_dialects():
    res = runner.invoke(app, ["from-curl", SEED_CURL, "--name", "get_account_balance"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["key"] == "custom_task"
    assert doc["name"] == "get_account_balance"
    assert doc["value"]["url"] == "https://api.yourbank.com/accounts/balance"
    assert doc["value"]["api_token"] == "Bearer fin_api_key_001"
    assert doc["value"]["headers"] == {"X-Request-Source": "voice-agent"}
    assert doc["value"]["param"] == {"account_id": "%(account_id)s", "phone": "%(phone)s"}
    openai = runner.invoke(app, ["from-curl", "-", "--to", "openai"], input=SEED_CURL)
    assert openai.exit_code == 0, openai.output
    tool = json.loads(openai.stdout)
    assert set(tool["function"]["parameters"]["properties"]) == {"account_id", "phone"}
    assert "fin_api_key_001" not in openai.stdout


def test_from_curl_names_unsupported_flags_and_rejects_garbage():
    res = runner.invoke(app, ["from-curl", "curl -k -F caption=hi https://api.example.com/upload"])
    assert res.exit_code == 0, res.output
    assert "-k" in res.stderr
    assert json.loads(res.stdout)["value"]["method"] == "POST"
    upload = runner.invoke(app, ["from-curl", "curl -F file=@a.png https://api.example.com/upload"])
    assert upload.exit_code == 1
    assert "file" in upload.stderr
    bad = runner.invoke(app, ["from-curl", "not a curl command"])
    assert bad.exit_code == 1
    assert "error" in bad.stderr
    as_json = runner.invoke(app, ["from-curl", "not a curl command", "--json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["error"] == "invalid_curl"


def test_interactive_call_reads_the_callers_lines_from_the_terminal(tmp_path):
    from voicefn.testing import ScriptedLLM, text

    with ScriptedLLM() as llm:
        llm.push(text("Hello there!"), text("Bye now."))
        agent = tmp_path / "agent.json"
        agent.write_text(
            json.dumps(
                {
                    "name": "a",
                    "welcome_message": "Welcome!",
                    "llm": {"model": "m", "base_url": llm.base_url, "max_retries": 0},
                }
            )
        )
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "voicefn"), "call", str(agent)],
            input="hi\nbye\n/quit\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 0, proc.stderr
    assert "Welcome!" in proc.stdout
    assert "Hello there!" in proc.stdout
    assert "Bye now." in proc.stdout
    assert [m["content"] for m in llm.requests[1]["messages"] if m["role"] == "user"] == [
        "hi",
        "bye",
    ]
