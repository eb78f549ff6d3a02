"""After the call, inline (the library and `voicefn call`): extraction against the shipped
ScriptedLLM over real HTTP, the mapping into post-call functions sent to a real loopback server,
`store:` into call variables, and the execution record delivered to a real webhook receiver.
Nothing of ours is patched; no assertion depends on timing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import jsonschema
import pytest

from voicefn import CallContext, Executor
from voicefn.runtime import (
    CallSession,
    ErrorEvent,
    FunctionFinished,
    PostCallFinished,
    load_agent,
)
from voicefn.runtime.llm_client import LLMClient
from voicefn.runtime.postcall import (
    Extraction,
    FinishedCall,
    PostCallPlan,
    expand,
    extract,
    parse_answer,
    resolve,
)
from voicefn.runtime.postcall_record import EXECUTION_RECORD_SCHEMA
from voicefn.testing import Reply, ScriptedLLM, error_reply, text, tool_call

VARIABLES = [
    {"name": "email", "type": "string", "description": "The caller's email address"},
    {"name": "rating", "type": "integer", "description": "Satisfaction from 1 to 5"},
    {
        "name": "reason",
        "type": "enum",
        "values": ["billing", "shipping", "other"],
        "description": "Why they called",
        "required": True,
    },
    {"name": "products", "type": "list", "items": "string", "description": "Products named"},
    {"name": "callback", "type": "boolean", "description": "Wants a call back"},
]


def agent_doc(
    llm: ScriptedLLM, functions: Sequence[dict[str, Any]] = (), **extra: Any
) -> dict[str, Any]:
    return {
        "name": "post-agent",
        "system_prompt": "You help {customer_name}. Status: {order_status}.",
        "variables": {"customer_name": "Ana", "order_status": "unknown"},
        "llm": {"model": "scripted", "base_url": llm.base_url, "max_retries": 0},
        "post_call_variables": VARIABLES,
        "functions": list(functions),
        **extra,
    }


def call_of(**extra: Any) -> FinishedCall:
    base: dict[str, Any] = {
        "execution_id": "ex-1",
        "agent_id": "post-agent",
        "call_sid": "CA1",
        "from_number": "+15550100",
        "to_number": "+15550199",
        "started_at": 1_800_000_000.0,
        "ended_at": 1_800_000_042.5,
        "variables": {"customer_name": "Ana", "order_status": "shipped"},
        "transcript": [
            {"role": "agent", "text": "Hi Ana, how can I help?"},
            {"role": "caller", "text": "My parcel is late. Mail me at ana@example.com"},
            {"role": "agent", "text": "Sorry about that, I will check."},
        ],
    }
    base.update(extra)
    return FinishedCall(**base)


ANSWER = {
    "email": "ana@example.com",
    "rating": 2,
    "reason": "shipping",
    "products": None,
    "callback": False,
}


@pytest.fixture
async def ex():
    async with Executor(allow_private_network=True) as executor:
        yield executor


@pytest.fixture
def llm():
    with ScriptedLLM() as scripted:
        yield scripted


async def collect(events) -> list[Any]:
    return [ev async for ev in events]


# ----------------------------------------------------------------------------- extraction


async def test_one_structured_request_extracts_every_variable(llm):
    agent = load_agent(agent_doc(llm, post_call={"summary": True, "outcome": True}))
    llm.push(
        text(
            json.dumps(
                {
                    **ANSWER,
                    "summary": "Ana's parcel is late.",
                    "outcome": "failed",
                    "outcome_reason": "The parcel was not found.",
                }
            )
        )
    )
    async with LLMClient(llm.base_url, "k", max_retries=0) as client:
        ex = await extract(agent, call_of(), client)
    assert len(llm.requests) == 1
    request = llm.requests[0]
    assert request.get("stream") is not True
    fmt = request["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {v["name"] for v in VARIABLES} | {
        "summary",
        "outcome",
        "outcome_reason",
    }
    assert schema["properties"]["reason"]["enum"] == ["billing", "shipping", "other", None]
    assert schema["properties"]["rating"]["type"] == ["integer", "null"]
    assert "ana@example.com" in request["messages"][1]["content"]  # the transcript was sent
    assert ex.ok
    assert ex.error is None
    assert ex.values == {
        "email": "ana@example.com",
        "rating": 2,
        "reason": "shipping",
        "callback": False,
        "summary": "Ana's parcel is late.",
        "outcome": "failed",
        "outcome_reason": "The parcel was not found.",
    }
    assert ex.fields["products"].status == "missing"  # null: not said, and not invented
    assert [r["outcome"] for r in ex.requests] == ["ok"]


async def test_a_malformed_first_answer_is_sent_back_once_with_what_was_wrong(llm):
    agent = load_agent(agent_doc(llm))
    llm.push(
        text("Sure! The caller wanted help with shipping, their email is ana@example.com."),
        text("```json\n" + json.dumps(ANSWER) + "\n```"),
    )
    async with LLMClient(llm.base_url, "k", max_retries=0) as client:
        ex = await extract(agent, call_of(), client)
    assert len(llm.requests) == 2
    retry = llm.requests[1]["messages"]
    assert retry[-2] == {
        "role": "assistant",
        "content": "Sure! The caller wanted help with shipping, their email is ana@example.com.",
    }
    assert "not a JSON object" in retry[-1]["content"]
    assert [r["outcome"] for r in ex.requests] == ["malformed", "ok"]
    assert ex.ok
    assert ex.values["email"] == "ana@example.com"
    assert ex.values["reason"] == "shipping"


async def test_a_value_still_invalid_after_the_retry_is_recorded_never_invented(llm):
    agent = load_agent(agent_doc(llm))
    bad = {**ANSWER, "rating": "quite happy", "reason": "refund"}
    llm.push(text(json.dumps(bad)), text(json.dumps({**bad, "email": None})))
    async with LLMClient(llm.base_url, "k", max_retries=0) as client:
        ex = await extract(agent, call_of(), client)
    assert "rating not an integer" in llm.requests[1]["messages"][-1]["content"]
    rating, reason = ex.fields["rating"], ex.fields["reason"]
    assert (rating.status, rating.found, rating.value) == ("invalid", "quite happy", None)
    assert (reason.status, reason.found) == ("invalid", "refund")
    # the first answer's valid email is kept although the second one dropped it
    assert ex.values == {"email": "ana@example.com", "callback": False}
    assert not ex.ok  # reason is required and invalid
    assert ex.to_dict()["fields"]["reason"] == {
        "status": "invalid",
        "found": "refund",
        "reason": "not one of billing, shipping, other",
    }


async def test_endpoints_without_json_schema_fall_back_and_are_remembered(llm):
    agent = load_agent(agent_doc(llm))
    llm.push(
        error_reply(400, "response_format json_schema is not supported by this model"),
        error_reply(400, "response_format is not supported"),
        text("Here you go:\n" + json.dumps(ANSWER) + "\nAnything else?"),
        text(json.dumps(ANSWER)),
    )
    async with LLMClient(llm.base_url, "k", max_retries=0) as client:
        first = await extract(agent, call_of(), client)
        second = await extract(agent, call_of(), client)
    modes = [r.get("response_format", {}).get("type") for r in llm.requests]
    assert modes == ["json_schema", "json_object", None, None]
    assert [r["outcome"] for r in first.requests] == ["refused", "refused", "ok"]
    assert "email" in llm.requests[2]["messages"][0]["content"]  # the values are in the prompt
    assert first.values == second.values == {k: v for k, v in ANSWER.items() if v is not None}
    assert [r["mode"] for r in second.requests] == ["text"]


async def test_a_failed_llm_request_is_an_error_and_nothing_is_invented(llm):
    agent = load_agent(agent_doc(llm))
    llm.push(error_reply(503, "overloaded"))
    async with LLMClient(llm.base_url, "k", max_retries=0) as client:
        ex = await extract(agent, call_of(), client)
    assert ex.error is not None
    assert "503" in ex.error
    assert ex.values == {}
    assert {f.status for f in ex.fields.values()} == {"missing"}
    assert not ex.ok


async def test_facts_decide_transferred_and_no_answer(llm):
    agent = load_agent(agent_doc(llm, post_call={"outcome": True}))
    llm.push(text(json.dumps({**ANSWER, "outcome": "success", "outcome_reason": None})))
    async with LLMClient(llm.base_url, "k", max_retries=0) as client:
        moved = await extract(agent, call_of(transfer_number="+15550142"), client)
        silent = await extract(
            agent, call_of(transcript=[{"role": "agent", "text": "Hello? Anyone there?"}]), client
        )
    assert moved.values["outcome"] == "transferred"
    assert moved.values["outcome_reason"] == "the call was transferred to +15550142"
    assert silent.values == {"outcome": "no-answer", "outcome_reason": "the caller never spoke"}
    assert silent.skipped == "the caller never spoke"
    assert len(llm.requests) == 1  # nothing to ask about a call nobody spoke in


def test_answers_are_found_in_prose_fences_and_think_blocks():
    assert parse_answer('<think>{"x": 1}</think> {"email": "a@b.c"}') == {"email": "a@b.c"}
    assert parse_answer('Result:\n```json\n{"a": [1, 2]}\n```') == {"a": [1, 2]}
    assert parse_answer("no json here") is None
    assert parse_answer("[1, 2]") is None


# ----------------------------------------------------------------------------- mapping


def crm_function(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "update_crm",
        "phase": "post_call",
        "parameters": {
            "type": "object",
            "properties": {
                "phone": {"type": "string"},
                "email": {"type": "string"},
                "reason": {"type": "string"},
                "rating": {"type": "string"},
                "status": {"type": "string"},
                "seconds": {"type": "number"},
                "notes": {"type": "string"},
                "source": {"type": "string"},
                "ended": {"type": "string"},
            },
            "required": ["phone", "reason"],
        },
        "mapping": {
            "phone": "call.from_number",
            "email": "post_call.email",
            "reason": "post_call.reason",
            "rating": "post_call.rating",
            "status": "variables.order_status",
            "seconds": "call.duration_s",
            "notes": "transcript",
            "source": {"value": "voice-agent"},
            "ended": "call.ended_by",
        },
        "action": {"type": "http", "method": "POST", "url": url},
        **extra,
    }


def test_the_mapping_fills_parameters_from_every_kind_of_source(llm, server):
    agent = load_agent(agent_doc(llm, [crm_function(f"{server.url}/echo")]))
    extraction = Extraction()
    extraction.fields = {}
    from voicefn.runtime.postcall import check_answer

    extraction.fields = check_answer(agent, ANSWER)
    resolved = resolve(agent.functions[0], call_of(), extraction)
    assert resolved.missing == []
    assert resolved.arguments == {
        "phone": "+15550100",
        "email": "ana@example.com",
        "reason": "shipping",
        "rating": "2",  # an integer into a string parameter: its text
        "status": "shipped",
        "seconds": 42.5,
        "notes": "agent: Hi Ana, how can I help?\ncaller: My parcel is late. Mail me at "
        "ana@example.com\nagent: Sorry about that, I will check.",
        "source": "voice-agent",
        "ended": "caller",
    }


async def test_post_call_http_function_gets_its_mapped_values_and_the_webhook_the_record(
    llm, ex, server
):
    order = {
        "name": "check_order",
        "description": "Look up an order",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "The order ID"}},
            "required": ["order_id"],
        },
        "store": {"order_status": "json.order_id", "echoed_method": "method"},
        "action": {"type": "http", "method": "POST", "url": f"{server.url}/echo"},
    }
    doc = agent_doc(
        llm,
        [order, crm_function(f"{server.url}/echo")],
        webhook_url=f"{server.url}/echo",
        post_call={"summary": True},
    )
    llm.push(
        Reply(tool_calls=[tool_call("check_order", {"order_id": "ORD-9"})]),
        text("Your order ORD-9 is on its way."),
        text(json.dumps({**ANSWER, "summary": "Ana asked about ORD-9."})),
    )
    async with CallSession(
        load_agent(doc),
        executor=ex,
        context=CallContext(call_sid="CA9", from_number="+15550100"),
    ) as session:
        await collect(session.turn("Where is ORD-9? I'm ana@example.com"))
        # the stored values joined the call's variables: the prompt is rendered with them
        assert session.context.variables["order_status"] == "ORD-9"
        assert session.messages[0]["content"] == "You help Ana. Status: ORD-9."
        events = await collect(session.finish())
    assert session.executions[0].stored == {"order_status": "ORD-9", "echoed_method": "POST"}
    finished = [e for e in events if isinstance(e, FunctionFinished)]
    assert [f.function for f in finished] == ["update_crm"]
    assert finished[0].result.ok, finished[0].result.content
    assert not [e for e in events if isinstance(e, ErrorEvent)]
    crm, hook = server.received[-2], server.received[-1]
    assert crm.json["status"] == "ORD-9"  # stored in-call, mapped after the call
    assert crm.json["email"] == "ana@example.com"
    assert crm.json["phone"] == "+15550100"
    assert crm.json["source"] == "voice-agent"
    assert crm.json["notes"].startswith("caller: Where is ORD-9?")
    record = hook.json
    jsonschema.validate(record, EXECUTION_RECORD_SCHEMA)
    assert hook.headers["Idempotency-Key"] == "CA9:post_call:webhook"
    assert record["status"] == "completed"
    assert record["call_id"] == "CA9"
    assert record["summary"] == "Ana asked about ORD-9."
    assert record["extracted_variables"] == {
        "email": "ana@example.com",
        "rating": 2,
        "reason": "shipping",
        "products": None,
        "callback": False,
    }
    assert record["extraction"]["fields"]["products"]["status"] == "missing"
    assert [t["role"] for t in record["transcript"]] == ["caller", "agent"]
    (execution,) = record["executions"]
    assert execution["function"] == "check_order"
    assert execution["ok"] is True
    assert execution["status"] == 200
    assert execution["latency_ms"] > 0
    assert execution["stored"] == {"order_status": "ORD-9", "echoed_method": "POST"}
    assert record["post_call"] == [
        {
            "function": "update_crm",
            "state": "succeeded",
            "ok": True,
            "status": 200,
            "error": None,
            "detail": None,
            "latency_ms": record["post_call"][0]["latency_ms"],
        }
    ]
    assert record["context_details"]["variables"]["order_status"] == "ORD-9"
    report = next(e for e in events if isinstance(e, PostCallFinished)).report
    assert report is session.post_call
    assert report.ok
    assert report.webhook is not None
    assert report.webhook.status == 200


async def test_failures_are_reported_and_the_next_steps_still_run(llm, ex, server):
    doc = agent_doc(
        llm,
        [crm_function(f"{server.url}/echo")],
        webhook_url=f"{server.url}/status/503",
    )
    llm.push(text("Hello."), error_reply(500, "extraction model down"))
    async with CallSession(load_agent(doc), executor=ex, context=CallContext(call_sid="CA2")) as s:
        await collect(s.turn("hi"))
        before = len(server.received)
        events = await collect(s.finish())
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert [e.message for e in errors] == [
        "the post-call extraction failed",
        "the agent webhook failed",
    ]
    assert "500" in (errors[0].detail or "")
    assert "503" in (errors[1].detail or "")
    crm = next(e for e in events if isinstance(e, FunctionFinished)).result
    # reason is required and was not extracted: the CRM request is not sent with a guess
    assert not crm.ok
    assert crm.error == "missing_values"
    assert "post_call.reason" in crm.data["detail"]
    assert [r.path for r in server.received[before:]] == ["/status/503"]  # only the webhook
    assert s.post_call is not None
    assert not s.post_call.ok
    assert s.post_call.record["post_call"][0]["state"] == "skipped"


async def test_without_a_mapping_a_function_gets_the_whole_call_data(llm, ex, server):
    fn = {
        "name": "archive",
        "phase": "post_call",
        "parameters": {
            "type": "object",
            "properties": {
                "call": {"type": "object"},
                "post_call": {"type": "object"},
                "transcript": {"type": "array"},
            },
        },
        "action": {"type": "http", "method": "POST", "url": f"{server.url}/echo"},
    }
    llm.push(text("Hello."), text(json.dumps(ANSWER)))
    async with CallSession(
        load_agent(agent_doc(llm, [fn])), executor=ex, context=CallContext(call_sid="CA3")
    ) as s:
        await collect(s.turn("I'm ana@example.com, shipping question"))
        await collect(s.finish())
    sent = server.received[-1].json
    assert sent["call"]["call_sid"] == "CA3"
    assert sent["call"]["ended_by"] == "caller"
    assert sent["post_call"]["reason"] == "shipping"
    assert sent["transcript"][0] == {
        "role": "caller",
        "text": "I'm ana@example.com, shipping question",
    }


async def test_an_agent_that_ends_the_call_is_recorded_as_ended_by_the_agent(llm, ex):
    end = {
        "name": "end_call",
        "description": "End the call",
        "action": {"type": "builtin", "builtin": "end_call", "message": "Bye!"},
    }
    doc = agent_doc(llm, [end])
    doc["post_call_variables"] = []
    llm.push(Reply(tool_calls=[tool_call("end_call", {})]))
    async with CallSession(load_agent(doc), executor=ex) as s:
        await collect(s.turn("that's all"))
        await collect(s.finish())
    assert s.post_call is not None
    assert s.post_call.call.ended_by == "agent"
    assert s.post_call.record["ended_by"] == "agent"
    assert s.post_call.extraction is None  # nothing declared: no LLM request
    assert len(llm.requests) == 1


async def test_post_call_javascript_gets_mapped_values_and_the_call_data(llm, ex, server):
    from voicefn.sandbox.python import check_host

    if not check_host().full:
        pytest.skip("needs bubblewrap + user namespaces")
    post = {
        "name": "pushToCrm",
        "phase": "post_call",
        "mapping": {"mail": "post_call.email", "who": "call.from_number", "tag": {"value": 7}},
        "action": {
            "type": "javascript",
            "code": "async function pushToCrm(data) {\n"
            f"  const r = await axios.post('{server.url}/echo', {{mail: data.mail, who: data.who,"
            " tag: data.tag, reason: data.post_call.reason, lines: data.transcript.length,"
            " name: data.variables.customer_name});\n"
            "  return {sent: r.data.json};\n}\n",
        },
    }
    llm.push(text("Hello Ana."), text(json.dumps(ANSWER)))
    async with CallSession(
        load_agent(agent_doc(llm, [post])),
        executor=ex,
        context=CallContext(from_number="+15550100"),
    ) as s:
        await collect(s.turn("shipping, ana@example.com"))
        events = await collect(s.finish())
    result = next(e for e in events if isinstance(e, FunctionFinished)).result
    assert result.ok, result.content
    assert server.received[-1].json == {
        "mail": "ana@example.com",
        "who": "+15550100",
        "tag": 7,
        "reason": "shipping",
        "lines": 2,
        "name": "Ana",
    }


# ----------------------------------------------------------------------------- the plan


def test_the_plan_keys_are_stable_and_expand_resolves_each_job(llm, server):
    agent = load_agent(
        agent_doc(llm, [crm_function(f"{server.url}/echo")], webhook_url=f"{server.url}/echo")
    )
    call = call_of(webhook_url=f"{server.url}/echo")
    plan = PostCallPlan.build(agent, call)
    assert plan == PostCallPlan.build(agent, call)  # the same call, the same keys
    assert [(j.kind, j.key) for j in plan.jobs] == [
        ("extract", "CA1:post_call:extract"),
        ("function", "CA1:post_call:function:update_crm"),
        ("webhook", "CA1:post_call:webhook"),
    ]
    assert all(j.after == ("CA1:post_call:extract",) for j in plan.jobs[1:])
    from voicefn.runtime.postcall import check_answer

    extraction = Extraction(fields=check_answer(agent, ANSWER))
    functions, webhook = expand(agent, call, extraction, plan, mask=["customer_name"])
    (work,) = functions
    assert work.key == "CA1:post_call:function:update_crm"
    assert work.arguments["email"] == "ana@example.com"
    assert work.missing == []
    assert webhook is not None
    assert webhook.record["post_call"] == [{"function": "update_crm", "state": "queued"}]
    assert webhook.record["context_details"]["variables"]["customer_name"] == "[secret]"
    jsonschema.validate(webhook.record, EXECUTION_RECORD_SCHEMA)
    assert FinishedCall.from_dict(json.loads(json.dumps(call.to_dict()))) == call


async def test_stored_values_fill_later_functions_templates_and_fillers(llm, ex, server):
    lookup = {
        "name": "lookup",
        "description": "Look up the order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
        "store": {"carrier": "json.order_id", "missing": "json.nothing.here"},
        "action": {"type": "http", "method": "POST", "url": f"{server.url}/echo"},
    }
    notify = {
        "name": "notify",
        "description": "Tell the carrier",
        "filler": "Contacting {carrier} now.",
        "action": {
            "type": "http",
            "method": "POST",
            "url": f"{server.url}/echo",
            "param": {"carrier": "{carrier}"},
        },
    }
    doc = agent_doc(llm, [lookup, notify])
    doc["post_call_variables"] = []
    llm.push(
        Reply(tool_calls=[tool_call("lookup", {"order_id": "UPS"})]),
        text("Found it."),
        Reply(tool_calls=[tool_call("notify", {})]),
        text("Done."),
    )
    from voicefn.runtime import Filler

    async with CallSession(load_agent(doc), executor=ex) as s:
        await collect(s.turn("where is it?"))
        events = await collect(s.turn("tell them"))
    assert [e.text for e in events if isinstance(e, Filler)] == ["Contacting UPS now."]
    assert server.received[-1].json == {"carrier": "UPS"}
    assert s.executions[0].stored == {"carrier": "UPS"}  # nothing found: nothing stored
    assert "missing" not in s.context.variables
