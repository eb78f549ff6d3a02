"""``voicefn call`` signs the agent webhook with VOICEFN_WEBHOOK_SECRET (checked on a real
loopback receiver with voicefn.webhooks.verify), and refuses a secret that is not one."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from voicefn.cli import app
from voicefn.webhooks import new_secret, verify

from servers import running_server

runner = CliRunner()


def _files(tmp_path: Path, webhook_url: str) -> list[str]:
    agent = tmp_path / "agent.json"
    agent.write_text(
        json.dumps(
            {"name": "signer", "llm": {"model": "m"}, "webhook_url": webhook_url, "functions": []}
        )
    )
    (tmp_path / "llm.yaml").write_text('- text: "Hello, how can I help?"\n')
    (tmp_path / "caller.txt").write_text("Hi\n")
    return [
        "call", str(agent),
        "--llm-script", str(tmp_path / "llm.yaml"),
        "--script", str(tmp_path / "caller.txt"),
        "--var", "call_sid=CA-cli-1",
        "--allow-private-network", "--json",
    ]  # fmt: skip


def test_voicefn_call_signs_the_agent_webhook_with_the_environments_secret(
    tmp_path: Path,
) -> None:
    secret = new_secret()
    with running_server() as server:
        args = _files(tmp_path, f"{server.url}/echo")
        res = runner.invoke(app, args, env={"VOICEFN_WEBHOOK_SECRET": secret})
        received = list(server.received)
    assert res.exit_code == 0, res.output
    (hook,) = received
    verify(hook.headers, hook.body, secret)
    assert hook.headers["webhook-id"] == hook.headers["Idempotency-Key"]
    assert hook.json["transcript"] == [
        {"role": "caller", "text": "Hi"},
        {"role": "agent", "text": "Hello, how can I help?"},
    ]
    assert json.loads(res.stdout)["post_call"]["webhook"]["ok"] is True


def test_voicefn_call_refuses_a_secret_that_is_not_one_and_never_shows_it(tmp_path: Path) -> None:
    res = runner.invoke(
        app, _files(tmp_path, "http://127.0.0.1:9/hook"), env={"VOICEFN_WEBHOOK_SECRET": "hunter2"}
    )
    assert res.exit_code == 2, res.output
    assert "VOICEFN_WEBHOOK_SECRET: a signing secret starts with 'whsec_'" in res.output
    assert "hunter2" not in res.output
