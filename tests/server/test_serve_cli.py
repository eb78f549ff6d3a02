"""The platform's commands: serve (first-start key, bind warning), keys create, push, pull."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from api_helpers import echo_function
from live import serve_process

import voicefn


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicefn.server", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_serve_prints_the_key_on_first_start_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serve_process(data) as first:
        assert first.key is not None
        assert first.key.startswith("vfn_")
        assert [line for line in first.lines if line.startswith("API key:")] == [
            f"API key: {first.key}"
        ]
        assert first.lines[-1].startswith(f"Dashboard: {first.url}/")
        with first.client(first.key) as api:
            assert api.get("/v1/workspace").json()["name"] == "default"
    assert (data / "voicefn.db").exists()
    assert stat.S_IMODE((data / "secret.key").stat().st_mode) == 0o600
    with serve_process(data) as second:
        assert second.key is None
        assert not any(line.startswith("API key:") for line in second.lines)
        with second.client(first.key) as api:
            assert api.get("/v1/workspace").status_code == 200


def test_serve_warns_when_binding_beyond_loopback(tmp_path: Path) -> None:
    with serve_process(tmp_path / "data", "--host", "0.0.0.0") as proc:
        assert proc.url.startswith("http://127.0.0.1:")
    assert "warning: binding to 0.0.0.0" in proc.logs()
    with serve_process(tmp_path / "data") as quiet:
        pass
    assert "warning" not in quiet.logs()


def test_keys_create_prints_the_key_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = _cli("keys", "create", "--workspace", "acme", "--data-dir", str(data))
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert made.stdout == key + "\n"
    assert key.startswith("vfn_")
    assert "created workspace 'acme'" in made.stderr
    again = _cli("keys", "create", "--workspace", "acme", "--data-dir", str(data))
    assert again.returncode == 0
    assert "created" not in again.stderr
    assert again.stdout.strip() != key
    assert "operator key" in made.stderr
    with (
        serve_process(data) as proc,
        proc.client(key) as api,
        proc.client(again.stdout.strip()) as b,
    ):
        assert proc.key is None  # the database had a workspace and a key already
        assert api.get("/v1/workspace").json()["name"] == "acme"
        assert api.get("/v1/workspaces").status_code == 200  # the first key: operator
        assert b.get("/v1/workspace").json()["name"] == "acme"
        assert b.get("/v1/workspaces").status_code == 403  # later ones are not


def test_push_then_pull_round_trips_an_agent_file(tmp_path: Path, server: Any) -> None:
    folder = tmp_path / "agent"
    (folder / "functions").mkdir(parents=True)
    function = echo_function(server.url, api_token="Bearer sk_push_0123456789")
    (folder / "functions" / "check_order.json").write_text(json.dumps(function))
    agent_file = folder / "agent.yaml"
    agent_file.write_text(
        yaml.safe_dump(
            {
                "name": "store-agent",
                "system_prompt": "You help {customer_name}.",
                "variables": {"customer_name": "there"},
                "functions": [
                    "functions/check_order.json",
                    {
                        "name": "end_call",
                        "description": "End the call when the caller says goodbye.",
                        "action": {"type": "builtin", "builtin": "end_call"},
                    },
                ],
            }
        )
    )
    with serve_process(tmp_path / "data", "--allow-private-network") as proc:
        assert proc.key is not None
        env = {"VOICEFN_URL": proc.url, "VOICEFN_API_KEY": proc.key}
        pushed = _cli("push", str(agent_file), env=env)
        assert pushed.returncode == 0, pushed.stderr
        assert pushed.stdout.startswith("created agent store-agent (agent_")
        assert "2 created" in pushed.stdout
        agent_id = pushed.stdout.split("(", 1)[1].split(")", 1)[0]
        again = _cli("push", str(agent_file), env=env)
        assert "2 unchanged" in again.stdout
        pulled = _cli("pull", agent_id, env=env)
        assert pulled.returncode == 0, pulled.stderr
        assert "sk_push_0123456789" not in pulled.stdout
        out = tmp_path / "pulled.yaml"
        full = _cli("pull", agent_id, "--include-secrets", "--out", str(out), env=env)
        assert full.returncode == 0, full.stderr
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        agent = voicefn.load_agent(out)
        assert [f.name for f in agent.functions] == ["check_order", "end_call"]
        assert agent.functions[0].http.token == "Bearer sk_push_0123456789"
        bad_file = tmp_path / "bad.yaml"
        bad_file.write_text(yaml.safe_dump({"name": "x", "system_promt": "typo"}))
        bad = _cli("push", str(bad_file), env=env)
        assert bad.returncode == 1
        assert "$.system_promt" in bad.stderr
        assert "system_prompt" in bad.stderr
        missing = _cli("pull", "agent_nope", env=env)
        assert missing.returncode == 1
        assert "not found" in missing.stderr
    no_key = _cli("pull", "agent_x", env={"VOICEFN_API_KEY": ""})
    assert no_key.returncode == 2


def test_the_voicefn_command_has_the_platform_commands() -> None:
    shown = subprocess.run(
        [sys.executable, "-c", "from voicefn.cli import main; main()", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert shown.returncode == 0
    commands = {line.split()[0] for line in shown.stdout.splitlines() if line.startswith("  ")}
    assert {"serve", "keys", "push", "pull"} <= commands
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, voicefn.cli; print('fastapi' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loaded.stdout.strip() == "False"  # --help does not pay for the server
