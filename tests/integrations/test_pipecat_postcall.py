"""A whole Pipecat call's lifecycle through register(): ``store:`` values reach a later
function, and when the pipeline ends the post-call work runs once (the post-call function and
the signed agent webhook reach a real loopback server), however often it is asked for; with
``report_to`` the finished call goes to a real ``voicefn serve`` instead.

Pipecat's own OpenAI service on voicefn's ScriptedLLM, its context aggregators and run_test, as in
test_pipecat.py (whose Bot this reuses); nothing of ours is mocked.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import jsonschema
import pytest

pytest.importorskip("pipecat")

import test_pipecat
from adapters_support import StoreAPI, postcall_agent
from test_pipecat import END, Bot

import voicefn
from voicefn.integrations.pipecat import VoicefnTools
from voicefn.runtime.platform_report import PlatformReceipt, PlatformTarget
from voicefn.runtime.postcall import PostCallReport
from voicefn.runtime.postcall_record import EXECUTION_RECORD_SCHEMA
from voicefn.server import EgressDefaults, ServerConfig
from voicefn.testing import Reply, ScriptedLLM, tool_call
from voicefn.webhooks import new_secret, verify

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from live import Live, live_server  # tests/server's real service

#: test_pipecat's fixtures: the executor, and bots on Pipecat's OpenAI service.
executor = test_pipecat.executor
make_bot = test_pipecat.make_bot
SECRET = new_secret()
CALL = voicefn.CallContext(
    call_sid="CA-pc-9", from_number="+15550100", variables={"customer_name": "Bruce"}
)
#: The LLM's side of the call: look the order up, track it with the stored carrier, answer, end.
REPLIES = [
    Reply(tool_calls=[tool_call("check_order_status", {"order_id": "ORD-1"}, id="c1")]),
    Reply(tool_calls=[tool_call("track_parcel", {}, id="c2")]),
    Reply(text="It shipped with UPS and arrives tomorrow.", tool_calls=END.tool_calls),
]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    config = ServerConfig(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'voicefn.db'}",
        egress=EgressDefaults(allow_private_network=True),
    )
    with live_server(config) as served:
        yield served


async def test_stored_values_reach_later_calls_and_the_post_call_work_runs_once_signed(
    scripted_llm: ScriptedLLM, store_api: StoreAPI, make_bot: Callable[..., Bot]
) -> None:
    bot = make_bot(voicefn.load_agent(postcall_agent(store_api.url)), CALL, signing_secret=SECRET)
    scripted_llm.push(*REPLIES)
    await bot.run("Where is my order ORD-1, and when does it come?")  # until end_call ends it
    tools = bot.tools
    assert isinstance(tools, VoicefnTools)
    # the pipeline's end ran the work (Pipecat awaits the LLM service's cleanup)
    assert len(store_api.to("/hooks/record")) == 1
    first, second = await asyncio.gather(tools.finish(), tools.finish())

    (track,) = store_api.to("/track")
    assert track.query == {"carrier": "UPS"}
    assert tools.stored == {"order_status": "shipped", "carrier": "UPS"}
    assert isinstance(first, PostCallReport)
    assert first is second is tools.post_call
    assert len(store_api.to("/follow-ups")) == 1
    assert len(store_api.to("/hooks/record")) == 1
    (follow_up,) = store_api.to("/follow-ups")
    assert follow_up.json["order_status"] == "shipped"
    assert follow_up.json["phone"] == "+15550100"
    (hook,) = store_api.to("/hooks/record")
    verify(hook.headers, hook.body, SECRET)
    assert hook.headers["webhook-id"] == "CA-pc-9:post_call:webhook"
    record = hook.json
    jsonschema.validate(record, EXECUTION_RECORD_SCHEMA)
    assert record["ended_by"] == "agent"
    assert record["transcript"][:2] == [
        {"role": "caller", "text": "Where is my order ORD-1, and when does it come?"},
        {"role": "agent", "text": "It shipped with UPS and arrives tomorrow."},
    ]
    assert [e["function"] for e in record["executions"]] == [
        "check_order_status",
        "track_parcel",
        "end_call",
    ]
    assert record["executions"][0]["stored"] == {"order_status": "shipped", "carrier": "UPS"}
    assert record["post_call"][0]["state"] == "succeeded"


async def test_report_to_sends_the_finished_call_to_voicefn_serve_once(
    scripted_llm: ScriptedLLM, store_api: StoreAPI, make_bot: Callable[..., Bot], live: Live
) -> None:
    doc = postcall_agent(store_api.url)
    with live.client() as api:
        created = api.post("/v1/agents", json=doc)
        assert created.status_code == 201, created.text
        agent_id = created.json()["id"]
    target = PlatformTarget(live.url, live.key, agent_id)
    bot = make_bot(voicefn.load_agent(doc), CALL, report_to=target, finish_on_end=False)
    scripted_llm.push(*REPLIES)
    await bot.run("Where is my order ORD-1, and when does it come?")
    assert bot.tools.post_call is None  # finish_on_end=False: left to finish()
    receipt = await bot.tools.finish()
    again = await bot.tools.finish()

    assert isinstance(receipt, PlatformReceipt)
    assert receipt is again
    assert receipt.ok, receipt.error
    assert receipt.status == 202
    assert receipt.created is True
    assert [(j["kind"], j["name"]) for j in receipt.jobs] == [("task", "post_call")]
    with live.client() as api:
        listed = api.get("/v1/calls", params={"agent_id": agent_id}).json()["data"]
        detail = api.get(f"/v1/calls/{receipt.call_id}").json()
    assert [c["id"] for c in listed] == [receipt.call_id]  # reported once
    assert detail["call_sid"] == "CA-pc-9"
    assert detail["ended_by"] == "agent"
    assert detail["transcript"][0] == {
        "role": "caller",
        "text": "Where is my order ORD-1, and when does it come?",
    }
    assert detail["variables"]["carrier"] == "UPS"
    assert detail["executions"][0]["stored"] == {"order_status": "shipped", "carrier": "UPS"}


async def test_a_service_that_refuses_the_report_is_a_receipt_with_the_reason(
    make_bot: Callable[..., Bot], store_api: StoreAPI, live: Live, scripted_llm: ScriptedLLM
) -> None:
    target = PlatformTarget(live.url, "not-a-key", "agent_nope")
    bot = make_bot(voicefn.load_agent(postcall_agent(store_api.url)), CALL, report_to=target)
    scripted_llm.push(Reply(text="Bye.", tool_calls=END.tool_calls))
    await bot.run("Bye")
    receipt = await bot.tools.finish()
    assert isinstance(receipt, PlatformReceipt)
    assert not receipt.ok
    assert receipt.status == 401
    assert receipt.error is not None
    assert "401" in receipt.error
    assert "not-a-key" not in repr(target)  # the key stays out of logs and reprs
    with pytest.raises(ValueError, match="is not an http"):
        PlatformTarget("127.0.0.1:8700", "k", "agent_1")
