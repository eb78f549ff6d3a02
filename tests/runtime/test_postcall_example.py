"""examples/followup_agent.yaml runs as its header says: `voicefn call` with the scripted LLM
and caller, against the real example API (examples/order_api.py) on a free port."""

from __future__ import annotations

import json
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from voicefn.cli import app
from voicefn.runtime.postcall_record import EXECUTION_RECORD_SCHEMA

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

import order_api  # noqa: E402


@pytest.fixture
def followup(tmp_path: Path) -> Iterator[Path]:
    server = order_api.serve(0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    text = (EXAMPLES / "followup_agent.yaml").read_text()
    (tmp_path / "followup_agent.yaml").write_text(text.replace("http://127.0.0.1:8787", url))
    (tmp_path / "functions").mkdir()
    shutil.copy(EXAMPLES / "functions" / "end_call.json", tmp_path / "functions")
    order_api.FOLLOW_UPS.clear()
    order_api.CALL_RECORDS.clear()
    yield tmp_path / "followup_agent.yaml"
    server.shutdown()
    server.server_close()


def test_the_followup_example_extracts_maps_and_delivers_the_record(followup: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "call",
            str(followup),
            "--llm-script",
            str(EXAMPLES / "followup_llm_script.yaml"),
            "--script",
            str(EXAMPLES / "followup_caller.txt"),
            "--var",
            "from_number=+15550100",
            "--allow-private-network",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    post = summary["post_call"]
    assert post["ok"] is True
    assert post["extraction"]["values"]["topic"] == "order_status"
    (follow_up,) = order_api.FOLLOW_UPS
    assert follow_up["phone"] == "+15550100"  # call.from_number
    assert follow_up["order_status"] == "shipped"  # stored in-call from the order's answer
    assert follow_up["order_id"] == "ORD-78234"  # post_call.order_id
    assert follow_up["callback"] is False
    assert follow_up["satisfaction"] == 4
    assert follow_up["outcome"] == "success"
    assert follow_up["source"] == "voice-agent"
    (record,) = order_api.CALL_RECORDS
    jsonschema.validate(record, EXECUTION_RECORD_SCHEMA)
    assert record["ended_by"] == "agent"
    assert record["summary"].startswith("The caller asked where order ORD-78234 is")
    assert record["executions"][0]["stored"] == {"order_status": "shipped", "carrier": "UPS"}
    assert record["post_call"][0]["state"] == "succeeded"
    assert record == post["record"]


def test_the_readme_documents_every_field_of_the_execution_record() -> None:
    readme = (EXAMPLES.parent / "README.md").read_text()
    section = readme[readme.index("## After the call") :]
    section = section[: section.index("\n## ")]
    for name in EXECUTION_RECORD_SCHEMA["properties"]:
        assert f"`{name}`" in section, name
    for name in ("required", "values", "items", "description"):
        assert f"`{name}`" in section, name
