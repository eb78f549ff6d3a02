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
    res = runner.invoke(app, ["convert", str(write(tmp_path, BOLNA)), "--to", "synthflow"])
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


# ------------------------------------------------------------------ consistency (issue 8, §4)


def test_version_and_exit_codes_are_documented_in_help():
    from voicefn import __version__

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0
    assert res.output.strip() == f"voicefn {__version__}"
    helped = runner.invoke(app, ["--help"])
    assert "Exit codes: 0 ok, 1 invalid input" in helped.output
    assert "--install-completion" in helped.output


def test_json_errors_on_every_command(tmp_path):
    missing = str(tmp_path / "missing.json")
    for args in (
        ["validate", missing],
        ["convert", missing, "--to", "openai"],
        ["invoke", missing],
        ["tools", missing],
        ["call", missing],
        ["from-curl", "nonsense"],
    ):
        res = runner.invoke(app, [*args, "--json"])
        assert res.exit_code == 1, args
        doc = json.loads(res.stdout)
        text = json.dumps(doc)
        assert str((tmp_path / "missing.json").resolve()) in text or args[0] == "from-curl", args
    usage = runner.invoke(app, ["convert", str(tmp_path / "x.json"), "--json"])  # no --to
    assert usage.exit_code == 2
    assert json.loads(usage.stdout) == {
        "ok": False,
        "error": "usage",
        "message": "Missing option '--to'.",
        "exit_code": 2,
    }
    unknown = runner.invoke(app, ["validate", "--frobnicate", "--json"])
    assert unknown.exit_code == 2
    assert "--frobnicate" in json.loads(unknown.stdout)["message"]


def test_empty_file_is_an_error(tmp_path):
    empty = tmp_path / "f.yaml"
    empty.write_text("\n")
    res = runner.invoke(app, ["validate", str(empty)])
    assert res.exit_code == 1
    assert "the file is empty" in res.output


def test_fix_lines_fit_the_problem(tmp_path):
    doc = {
        "name": "check",
        "description": "Use when the caller asks for a check",
        "action": {"method": "GET", "url": "https://api.example.com/x", "timeout_ms": -5},
    }
    res = runner.invoke(app, ["validate", str(write(tmp_path, doc)), "--json"])
    [report] = json.loads(res.stdout)
    [problem] = report["problems"]
    assert problem["path"] == "$.action.timeout_ms"
    assert problem["fix"] == "use a number greater than 0"
    yes = tmp_path / "fn.yaml"
    yes.write_text(
        "name: check\ndescription: yes\naction: {method: GET, url: 'https://a.example.com/'}\n"
    )
    [report] = json.loads(runner.invoke(app, ["validate", str(yes), "--json"]).stdout)
    fixes = " ".join(p["fix"] for p in report["problems"])
    assert 'quote it ("yes")' in fixes


def test_from_curl_todo_description_is_a_warning_at_validate(tmp_path):
    made = runner.invoke(app, ["from-curl", "curl https://api.example.com/orders?id=1"])
    assert made.exit_code == 0
    path = tmp_path / "imported.json"
    path.write_text(made.stdout)
    res = runner.invoke(app, ["validate", str(path), "--json"])
    assert res.exit_code == 0
    [report] = json.loads(res.stdout)
    [todo] = [p for p in report["problems"] if p["path"] == "$.description"]
    assert todo["severity"] == "warning"
    assert "TODO" in todo["message"]


def test_from_curl_with_several_requests_prints_a_list_or_writes_files(tmp_path):
    paste = "curl https://api.example.com/a --next https://api.example.com/b -d x=1"
    res = runner.invoke(app, ["from-curl", paste, "--name", "step"])
    assert res.exit_code == 0, res.output
    docs = json.loads(res.stdout)
    assert [d["name"] for d in docs] == ["step", "step_2"]
    assert "2 requests" in res.stderr
    out_dir = tmp_path / "fns"
    written = runner.invoke(app, ["from-curl", paste, "--out-dir", str(out_dir), "--json"])
    assert written.exit_code == 0, written.output
    files = sorted(p.name for p in out_dir.iterdir())
    assert len(files) == 2
    assert sorted(json.loads(written.stdout)["written"]) == [str(out_dir / f) for f in files]
    check = runner.invoke(app, ["validate", *(str(out_dir / f) for f in files)])
    assert check.exit_code == 0, check.output


def test_invoke_says_not_sent_for_a_refused_request(server, tmp_path):
    doc = json.loads(json.dumps(BOLNA))
    doc["value"]["url"] = f"{server.url}/echo"
    res = runner.invoke(
        app,
        ["invoke", str(write(tmp_path, doc)), "--args", '{"order_id": "1", "from_number": "2"}'],
    )
    assert res.exit_code == 1
    assert "(not sent: refused by the egress policy)" in res.output
    assert server.received == []


def test_invoke_shows_the_transfer_target_and_the_webhook_sent(server, tmp_path):
    doc = {
        "name": "transfer_to_support",
        "description": "Transfer the caller to a person",
        "action": {
            "type": "builtin",
            "builtin": "transfer_call",
            "transfer_number": "+14155550100",
            "pre_call_webhook_param": {"why": "transfer"},
            "pre_call_webhook_url": f"{server.url}/echo",
        },
    }
    path = str(write(tmp_path, doc))
    res = runner.invoke(app, ["invoke", path, "--allow-private-network"])
    assert res.exit_code == 0, res.output
    assert "transfer to +14155550100" in res.output
    assert f"webhook  POST {server.url}/echo sent" in res.output
    assert server.received[-1].path == "/echo"
    as_json = runner.invoke(app, ["invoke", path, "--allow-private-network", "--json"])
    out = json.loads(as_json.stdout)
    assert out["webhook"] == {"url": f"{server.url}/echo", "sent": True, "detail": None}
    assert out["directive"]["number"] == "+14155550100"
    refused = runner.invoke(app, ["invoke", path, "--json"])  # loopback refused for the webhook
    assert json.loads(refused.stdout)["webhook"]["sent"] is False


def test_environment_defaults_for_network_options(server, tmp_path):
    doc = json.loads(json.dumps(BOLNA))
    doc["value"]["url"] = f"{server.url}/echo"
    args = ["invoke", str(write(tmp_path, doc)), "--args", '{"order_id": "1", "from_number": "2"}']
    assert runner.invoke(app, args).exit_code == 1
    res = runner.invoke(app, args, env={"VOICEFN_ALLOW_PRIVATE_NETWORK": "1"})
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, args, env={"VOICEFN_ALLOW": "10.0.0.0/8 127.0.0.1/32"})
    assert res.exit_code == 0, res.output


def test_call_names_the_llm_endpoint_it_cannot_reach_and_exits_1(tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on (bound, never listening)
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
        agent = tmp_path / "agent.json"
        agent.write_text(json.dumps({"name": "a", "llm": {"model": "m", "max_retries": 0}}))
        res = runner.invoke(app, ["call", str(agent), "--base-url", url], input="hi\n")
        assert res.exit_code == 1
        assert f"at {url}/chat/completions" in res.output
        as_json = runner.invoke(
            app, ["call", str(agent), "--base-url", url, "--json"], input="hi\n"
        )
    assert as_json.exit_code == 1
    summary = json.loads(as_json.stdout)
    assert summary["ok"] is False
    [error] = [line for line in summary["transcript"] if line.get("event") == "error"]
    assert error["endpoint"] == f"{url}/chat/completions"


def test_call_validates_the_llm_base_url(tmp_path):
    agent = tmp_path / "agent.json"
    agent.write_text(json.dumps({"name": "a", "llm": {"model": "m"}}))
    res = runner.invoke(app, ["call", str(agent), "--base-url", "localhost:11434"])
    assert res.exit_code == 2
    assert "absolute" in res.output
    agent.write_text(json.dumps({"name": "a", "llm": {"model": "m", "base_url": "ftp://x"}}))
    res = runner.invoke(app, ["call", str(agent)])
    assert res.exit_code == 1
    assert "$.llm.base_url" in res.output


def test_call_with_an_llm_script_needs_no_hosted_llm(tmp_path):
    agent = tmp_path / "agent.yaml"
    agent.write_text("name: a\nwelcome_message: Hello!\n")
    script = tmp_path / "llm.yaml"
    script.write_text("- Hi, how can I help?\n- text: Bye.\n")
    res = runner.invoke(
        app, ["call", str(agent), "--llm-script", str(script), "--json"], input="hi\nbye\n"
    )
    assert res.exit_code == 0, res.output
    said = [line["text"] for line in json.loads(res.stdout)["transcript"] if "speaker" in line]
    assert said == ["Hello!", "hi", "Hi, how can I help?", "bye", "Bye."]
    script.write_text("- tool_calls: [{arguments: {}}]\n- {txt: hi}\n")
    bad = runner.invoke(app, ["call", str(agent), "--llm-script", str(script)])
    assert bad.exit_code == 1
    assert "$[0].tool_calls[0]" in bad.output
    assert "did you mean 'text'?" in bad.output
    script.write_text("- Only one answer.\n")
    short = runner.invoke(
        app, ["call", str(agent), "--llm-script", str(script)], input="one\ntwo\n"
    )
    assert short.exit_code == 1  # the script ran out: the second request failed
    assert "no scripted reply left" in short.output


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_hangs_up_an_interactive_call_on_the_first_press(tmp_path):
    import signal

    agent = tmp_path / "agent.yaml"
    agent.write_text("name: a\nwelcome_message: Welcome!\n")
    script = tmp_path / "llm.yaml"
    script.write_text("- Hello.\n")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "voicefn"),
            "call",
            str(agent),
            "--llm-script",
            str(script),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = ""
        while "Welcome!" not in seen:  # the call is up and waiting for the caller
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            seen += line
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)  # stdin stays open (communicate() would close it: end of input)
        stdout = proc.stdout.read()
        stderr = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()  # closes the pipes
    assert proc.returncode == 0, stderr
    assert "call ended (the caller hung up)" in stdout
    assert "Traceback" not in stderr


def test_dev_keeps_the_callers_working_directory(tmp_path):
    (tmp_path / "f.json").write_text(json.dumps(BOLNA))
    proc = subprocess.run(
        ["sh", str(ROOT / "dev"), "voicefn", "validate", "f.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok f.json: check_order_status (bolna)" in proc.stdout


def test_cannot_read_file_shows_the_resolved_path(tmp_path):
    res = runner.invoke(app, ["validate", "no/such/file.json"])
    assert res.exit_code == 1
    assert str((Path.cwd() / "no/such/file.json").resolve()) in res.output


def test_light_commands_do_not_import_the_llm_client_or_the_engine(tmp_path):
    fn = write(tmp_path, BOLNA)
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from voicefn.cli import app\n"
        "r = CliRunner()\n"
        f"for args in (['--help'], ['validate', {str(fn)!r}], ['convert', {str(fn)!r}, '--to', 'openai'],"
        " ['from-curl', 'curl https://api.example.com/a']):\n"
        "    assert r.invoke(app, args).exit_code == 0, args\n"
        "print(sorted(m for m in ('openai', 'voicefn.executor', 'voicefn.runtime.session', "
        "'jsonschema', 'voicefn.sandbox.contract') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_dialect_names_match_the_engine():
    import voicefn
    from voicefn.cli._app import DIALECT_NAMES

    assert DIALECT_NAMES == voicefn.DIALECTS


def test_python_entrypoint_setting_picks_one_of_several_async_functions(tmp_path):
    code = '''
async def helper(ctx: RunContext) -> dict:
    """Not this one."""
    return {"status": "success"}


async def check_stock(ctx: RunContext, product_id: str) -> dict:
    """Check stock.

    Args:
        product_id: The product
    """
    return {"status": "success"}
'''
    several = tmp_path / "several.py"
    several.write_text(code)
    res = runner.invoke(app, ["validate", str(several), "--json"])
    [report] = json.loads(res.stdout)
    assert res.exit_code == 1
    assert '__voicefn__ = {"entrypoint": "helper"}' in report["problems"][0]["fix"]
    named = tmp_path / "named.py"
    named.write_text('__voicefn__ = {"entrypoint": "check_stock"}\n' + code)
    res = runner.invoke(app, ["convert", str(named), "--to", "voicefn"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["name"] == "check_stock"
    assert doc["action"]["entrypoint"] == "check_stock"
    assert list(doc["parameters"]["properties"]) == ["product_id"]
