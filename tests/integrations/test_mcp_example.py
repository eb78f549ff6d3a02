"""examples/mcp_server.md runs as documented: the example store API, ``voicefn mcp serve`` over
HTTP with a token (on a free port instead of 8931), the document's Python client, and the
document's agent file consuming the server in ``voicefn tools`` and a scripted ``voicefn call``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("mcp")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DOC = (EXAMPLES / "mcp_server.md").read_text()
VOICEFN = str(Path(sys.executable).with_name("voicefn"))
sys.path.insert(0, str(EXAMPLES))

import order_api  # noqa: E402


def block(language: str, index: int = 0) -> str:
    return re.findall(rf"```{language}\n(.*?)```", DOC, re.S)[index]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The store API and the example store agent (pointed at it) served over MCP/HTTP."""
    api = order_api.serve(0)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    store = f"http://127.0.0.1:{api.server_address[1]}"
    (tmp_path / "functions").mkdir()
    for f in (EXAMPLES / "functions").iterdir():
        (tmp_path / "functions" / f.name).write_text(
            f.read_text().replace("http://127.0.0.1:8787", store)
        )
    (tmp_path / "store_agent.yaml").write_text((EXAMPLES / "store_agent.yaml").read_text())
    command = [VOICEFN, "mcp", "serve", str(tmp_path / "store_agent.yaml"), "--http"]
    command += ["--port", "0", "--token", "demo-mcp-token", "--allow-private-network", "--json"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        yield json.loads(line)["url"], tmp_path
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        api.shutdown()
        api.server_close()


def test_the_documented_python_client(served: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = served
    script = tmp_path / "client.py"
    script.write_text(block("python").replace("http://127.0.0.1:8931/mcp", url))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    expected = block("text")  # what the document says it prints
    assert done.stdout.strip().splitlines() == expected.strip().splitlines()


def test_the_documented_agent_consumes_the_server(served: tuple[str, Path]) -> None:
    url, folder = served
    agent = folder / "mcp_agent.yaml"
    agent.write_text(block("yaml").replace("http://127.0.0.1:8931/mcp", url))
    env = {**os.environ, "VOICEFN_ALLOW_PRIVATE_NETWORK": "1"}
    tools = subprocess.run(
        [VOICEFN, "tools", str(agent), "--json"], capture_output=True, text=True, env=env
    )
    assert tools.returncode == 0, tools.stdout + tools.stderr
    names = [t["function"]["name"] for t in json.loads(tools.stdout)["tools"]]
    assert names == ["check_order_status", "book_appointment", "end_call"]
    call = subprocess.run(
        [
            VOICEFN,
            "call",
            str(agent),
            "--llm-script",
            str(EXAMPLES / "llm_script.yaml"),
            "--script",
            str(EXAMPLES / "caller_script.txt"),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert call.returncode == 0, call.stdout + call.stderr
    summary = json.loads(call.stdout)
    executions = {e["function"]: e for e in summary["executions"]}
    assert executions["check_order_status"]["ok"] is True
    assert json.loads(executions["check_order_status"]["content"])["status"] == "shipped"
    assert executions["book_appointment"]["ok"] is True
    refused = subprocess.run(
        [VOICEFN, "tools", str(agent)],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("VOICEFN_ALLOW")},
    )
    assert refused.returncode == 1
    assert "VOICEFN_ALLOW_PRIVATE_NETWORK=1" in refused.stderr


def test_the_documented_import(served: tuple[str, Path]) -> None:
    url, _ = served
    done = subprocess.run(
        [
            VOICEFN,
            "mcp",
            "import",
            url,
            "--header",
            "Authorization: Bearer demo-mcp-token",
            "--allow-private-network",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    docs = json.loads(done.stdout)
    assert [d["name"] for d in docs] == [
        "check_order_status",
        "book_appointment",
        "transfer_to_support",
        "end_call",
    ]
    assert docs[0]["action"]["type"] == "mcp"
    assert docs[0]["action"]["headers"] == {"Authorization": "Bearer demo-mcp-token"}
