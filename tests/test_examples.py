"""The examples run as documented: the store agent, driven by a scripted LLM, against the real
example API (examples/order_api.py) on 127.0.0.1."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voicefn.cli import app
from voicefn.testing import Reply, ScriptedLLM, text, tool_call

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

import order_api  # noqa: E402


@pytest.fixture
def store_api():
    try:
        server = order_api.serve(8787)  # the port the example functions name
    except OSError:
        pytest.skip("port 8787 is busy")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_store_agent_example_call(store_api):
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
                "call", str(ROOT / "examples" / "store_agent.yaml"),
                "--script", str(ROOT / "examples" / "caller_script.txt"),
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
