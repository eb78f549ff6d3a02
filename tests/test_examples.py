"""The examples run as documented: the store agent, driven by a scripted LLM, against the real
example API (examples/order_api.py) on 127.0.0.1, on a free port."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voicefn.cli import app
from voicefn.testing import Reply, ScriptedLLM, text, tool_call

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))

import order_api  # noqa: E402


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    """The example API on a free port, and a copy of the examples pointing at it: the agent
    file's path in the copy."""
    server = order_api.serve(0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    shutil.copy(EXAMPLES / "store_agent.yaml", tmp_path / "store_agent.yaml")
    (tmp_path / "functions").mkdir()
    for f in (EXAMPLES / "functions").iterdir():
        (tmp_path / "functions" / f.name).write_text(
            f.read_text().replace("http://127.0.0.1:8787", url)
        )
    yield tmp_path / "store_agent.yaml"
    server.shutdown()
    server.server_close()


def test_store_agent_example_call(store: Path) -> None:
    with ScriptedLLM() as llm:
        llm.push(
            Reply(tool_calls=[tool_call("check_order_status", {"order_id": "ORD-78234"})]),
            text("Your order has shipped with UPS."),
            Reply(
                tool_calls=[
                    tool_call(
                        "book_appointment",
                        {
                            "patient_name": "Priya Sharma",
                            "preferred_date": "2026-12-20",
                            "preferred_time": "10:30 AM",
                        },
                    )
                ]
            ),
            text("You're booked, APT-1001."),
            Reply(tool_calls=[tool_call("end_call", {})]),
        )
        res = CliRunner().invoke(
            app,
            [
                "call", str(store),
                "--script", str(EXAMPLES / "caller_script.txt"),
                "--base-url", llm.base_url, "--model", "scripted",
                "--allow-private-network", "--var", "customer_name=Priya", "--json",
            ],
        )  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    results = {e["function"]: json.loads(e["content"]) for e in summary["executions"]}
    assert results["check_order_status"]["status"] == "shipped"
    assert results["book_appointment"]["booking_id"] == "APT-1001"
    assert results["book_appointment"]["booked_by_agent"] == "acme-store"
    assert (
        summary["transcript"][0]["text"]
        == "Hi Priya, this is Sam from Acme. How can I help you today?"
    )
    assert summary["transcript"][-2] == {
        "speaker": "agent",
        "text": "Thanks for calling Acme, Priya. Goodbye!",
    }
    assert summary["ended"] is True


def test_store_agent_runs_with_the_example_llm_script_and_no_hosted_llm(store: Path) -> None:
    res = CliRunner().invoke(
        app,
        [
            "call", str(store),
            "--llm-script", str(EXAMPLES / "llm_script.yaml"),
            "--script", str(EXAMPLES / "caller_script.txt"),
            "--allow-private-network", "--json",
        ],
        env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "VOICEFN_LLM_MODEL": ""},
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["ok"] is True
    said = [line["text"] for line in summary["transcript"] if line.get("speaker") == "agent"]
    assert "You're booked for December 20th at 10:30 AM, booking APT-1001." in said
    results = {e["function"]: json.loads(e["content"]) for e in summary["executions"]}
    assert results["book_appointment"]["booking_id"] == "APT-1001"
    assert summary["ended"] is True


def test_example_agent_validates_with_every_function() -> None:
    res = CliRunner().invoke(app, ["validate", str(EXAMPLES / "store_agent.yaml"), "--json"])
    assert res.exit_code == 0, res.output
    [agent] = json.loads(res.stdout)
    assert agent["kind"] == "agent"
    assert sorted(f["name"] for f in agent["functions"]) == [
        "book_appointment",
        "check_order_status",
        "end_call",
        "transfer_to_support",
    ]


def test_order_api_says_the_port_is_busy_without_a_traceback() -> None:
    holder = order_api.serve(0)
    try:
        port = holder.server_address[1]
        proc = subprocess.run(
            [sys.executable, str(EXAMPLES / "order_api.py"), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        holder.server_close()
    assert proc.returncode == 1
    assert "busy" in proc.stderr
    assert "--port 0" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_readme_python_snippet_runs_as_pasted(store: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("```python\n", readme.index("From Python (this runs as pasted")) + 10
    snippet = readme[start : readme.index("```", start)]
    cwd = store.parent
    (cwd / "examples").mkdir()
    (cwd / "functions").rename(cwd / "examples" / "functions")  # the path the snippet names
    proc = subprocess.run(
        [sys.executable, "-c", snippet], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert '"status": "shipped"' in proc.stdout or "'status': 'shipped'" in proc.stdout
    assert "True 200 None" in proc.stdout
    assert "'name': 'check_order_status'" in proc.stdout  # the dumped tool
    assert proc.stdout.rstrip().endswith("[]")  # lost: nothing for an LLM dialect
