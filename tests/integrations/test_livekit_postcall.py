"""A whole LiveKit call's lifecycle through VoicefnToolset: ``store:`` values reach a later
function, and when the session closes the post-call work runs once (the post-call function and
the signed agent webhook reach a real loopback server), however often it is asked for.

LiveKit's own AgentSession in text mode and its inference client on voicefn's ScriptedLLM, as in
test_livekit.py; nothing of ours is mocked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import pytest

pytest.importorskip("livekit.agents")

from adapters_support import NEVER, StoreAPI, postcall_agent
from livekit.agents import Agent, AgentSession, CloseEvent, inference

import voicefn
from voicefn.integrations.livekit import VoicefnToolset
from voicefn.runtime import postcall_delivery
from voicefn.runtime.postcall import PostCallReport
from voicefn.runtime.postcall_record import EXECUTION_RECORD_SCHEMA
from voicefn.testing import Reply, ScriptedLLM, text, tool_call
from voicefn.webhooks import new_secret, verify

CALL = voicefn.CallContext(call_sid="CA-lk-9", from_number="+15550100", to_number="+15550199")
SECRET = new_secret()


@pytest.fixture
async def executor() -> AsyncIterator[voicefn.Executor]:
    async with voicefn.Executor(allow_private_network=True) as ex:
        yield ex


@pytest.fixture
async def llm(scripted_llm: ScriptedLLM) -> AsyncIterator[inference.LLM]:
    client = inference.LLM(
        "test-model", base_url=scripted_llm.base_url, api_key="k", api_secret="s" * 32
    )
    yield client
    await client.aclose()


async def started(llm: inference.LLM, tools: VoicefnToolset) -> AgentSession[Any]:
    session: AgentSession[Any] = AgentSession(llm=llm)
    await session.start(Agent(instructions=tools.instructions, tools=[tools]))
    return session


def closing(session: AgentSession[Any]) -> asyncio.Future[CloseEvent]:
    future: asyncio.Future[CloseEvent] = asyncio.get_running_loop().create_future()
    session.on("close", lambda ev: future.done() or future.set_result(ev))
    return future


async def test_stored_values_reach_later_calls_and_the_post_call_work_runs_once_signed(
    scripted_llm: ScriptedLLM, llm: inference.LLM, store_api: StoreAPI, executor: voicefn.Executor
) -> None:
    agent = voicefn.load_agent(postcall_agent(store_api.url))
    tools = VoicefnToolset(agent, executor=executor, context=CALL, signing_secret=SECRET)
    scripted_llm.push(
        Reply(tool_calls=[tool_call("check_order_status", {"order_id": "ORD-1"}, id="c1")]),
        text("Your order ORD-1 has shipped with UPS."),
        Reply(tool_calls=[tool_call("track_parcel", {}, id="c2")]),
        text("UPS says it arrives tomorrow."),
        Reply(tool_calls=[tool_call("end_call", {}, id="e1")]),
    )
    session = await started(llm, tools)
    ended = closing(session)
    await session.run(user_input="Where is my order ORD-1?")
    await session.run(user_input="When will it arrive?")
    session.run(user_input="Thanks, bye!")
    await asyncio.wait_for(ended, NEVER)  # end_call closed the session
    hook = await store_api.wait_for("/hooks/record")  # nobody called finish(): the close did
    first, second = await asyncio.gather(tools.finish(), tools.finish())
    again = await tools.finish(ended_by="caller")
    await session.aclose()

    # store: the second function's template used the first one's stored value
    (track,) = store_api.to("/track")
    assert track.query == {"carrier": "UPS"}
    assert tools.stored == {"order_status": "shipped", "carrier": "UPS"}
    assert tools.context.variables["carrier"] == "UPS"
    # once, however often finish was asked for: the same report every time
    assert isinstance(first, PostCallReport)
    assert first is second is again is tools.post_call
    assert len(store_api.to("/follow-ups")) == 1
    assert len(store_api.to("/hooks/record")) == 1
    (follow_up,) = store_api.to("/follow-ups")
    assert follow_up.json["phone"] == "+15550100"
    assert follow_up.json["order_status"] == "shipped"
    assert "caller: Where is my order ORD-1?" in follow_up.json["transcript"]
    # the agent webhook: signed as the platform signs, the key stable for the call
    verify(hook.headers, hook.body, SECRET)
    assert hook.headers["webhook-id"] == hook.headers["Idempotency-Key"]
    assert hook.headers["Idempotency-Key"] == "CA-lk-9:post_call:webhook"
    with pytest.raises(voicefn.webhooks.WebhookVerificationError):
        verify(hook.headers, hook.body, new_secret())
    record = hook.json
    jsonschema.validate(record, EXECUTION_RECORD_SCHEMA)
    assert record["call_id"] == "CA-lk-9"
    assert record["ended_by"] == "agent"
    assert record["transcript"][:4] == [
        {"role": "caller", "text": "Where is my order ORD-1?"},
        {"role": "agent", "text": "Your order ORD-1 has shipped with UPS."},
        {"role": "caller", "text": "When will it arrive?"},
        {"role": "agent", "text": "UPS says it arrives tomorrow."},
    ]
    assert {"role": "caller", "text": "Thanks, bye!"} in record["transcript"]
    executions = record["executions"]
    assert [e["function"] for e in executions] == ["check_order_status", "track_parcel", "end_call"]
    assert executions[0]["stored"] == {"order_status": "shipped", "carrier": "UPS"}
    assert executions[0]["tool_call_id"] == "c1"
    assert record["context_details"]["variables"]["order_status"] == "shipped"
    assert record["post_call"][0]["function"] == "create_follow_up"
    assert record["post_call"][0]["state"] == "succeeded"
    assert first.webhook is not None
    assert first.webhook.ok


async def test_without_a_secret_the_webhook_is_unsigned_with_one_warning_and_a_host_close_is_system(
    scripted_llm: ScriptedLLM,
    llm: inference.LLM,
    store_api: StoreAPI,
    executor: voicefn.Executor,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(postcall_delivery, "_warned_unsigned", False)
    agent = voicefn.load_agent(postcall_agent(store_api.url))
    tools = VoicefnToolset(agent, executor=executor, context=CALL)
    scripted_llm.push(text("Hello! How can I help?"))
    session = await started(llm, tools)
    tools.watch(session)  # no job and no tool call: told which session to follow
    with caplog.at_level(logging.WARNING, logger="voicefn.postcall"):
        await session.run(user_input="Hi there")
        await session.aclose()  # the host ends it
        report = await tools.finish()
        other = VoicefnToolset(agent, executor=executor, context=CALL)
        await other.finish()  # a second call: no second warning
    assert isinstance(report, PostCallReport)
    assert report.call.ended_by == "system"
    assert report.call.transcript == [
        {"role": "caller", "text": "Hi there"},
        {"role": "agent", "text": "Hello! How can I help?"},
    ]
    hooks = store_api.to("/hooks/record")
    assert len(hooks) == 2
    assert not any(k.lower().startswith("webhook-") for k in hooks[0].headers)
    warnings = [r for r in caplog.records if "unsigned" in r.getMessage()]
    assert len(warnings) == 1
    assert "VOICEFN_WEBHOOK_SECRET" in warnings[0].getMessage()
    # nothing stored: the follow-up's required order_status has no value and is not sent
    assert report.functions[0]["state"] == "skipped"
    assert store_api.to("/follow-ups") == []


async def test_a_bad_signing_secret_is_refused_with_what_to_do(executor: voicefn.Executor) -> None:
    agent = voicefn.load_agent(postcall_agent("http://127.0.0.1:9"))
    with pytest.raises(ValueError, match=r"signing_secret: a signing secret starts with 'whsec_'"):
        VoicefnToolset(agent, executor=executor, signing_secret="not-a-secret")
    with pytest.raises(ValueError, match=r"is not base64") as caught:
        VoicefnToolset(agent, executor=executor, signing_secret="whsec_***")
    assert "***" not in str(caught.value)  # the value is never echoed
