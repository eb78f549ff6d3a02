"""Vapi, Retell and ElevenLabs tool definitions as their docs publish them
(tests/dialects/platform_examples/, see its README): loaded, converted back without losing
anything, converted to each other, and the requests they make sent to a real local server."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from voicefn import CallContext, Executor
from voicefn.dialects import DIALECTS, detect, dump, load_function, validate

from servers import LocalServer

EXAMPLES = Path(__file__).parent / "platform_examples"
VOICEFN = str(Path(sys.executable).with_name("voicefn"))
ALL = sorted(p for p in EXAMPLES.glob("*/*.json"))


def example(name: str) -> dict[str, Any]:
    data = json.loads((EXAMPLES / name).read_text())
    if name.endswith("api-reference-api-schema-example.json"):  # only an api_schema
        data = {
            "type": "webhook",
            "name": "get_agent",
            "description": "Look up an agent",
            "api_schema": data,
        }
    return data


def at(doc: dict[str, Any], url: str) -> dict[str, Any]:
    """The same document pointing at ``url`` (where a platform keeps its URL)."""
    doc = copy.deepcopy(doc)
    if "server" in doc:
        doc["server"]["url"] = url
    elif "api_schema" in doc:
        doc["api_schema"]["url"] = url + doc["api_schema"]["url"].split(".com", 1)[1]
    else:
        doc["url"] = url
    return doc


def test_the_new_dialects_are_listed() -> None:
    assert {"vapi", "retell", "elevenlabs"} <= set(DIALECTS)


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_published_example_loads_and_converts_back_unchanged(path: Path) -> None:
    platform = path.parent.name
    data = example(f"{platform}/{path.name}")
    assert detect(data) == platform
    report = validate(data)
    assert report.ok, [str(p) for p in report.errors]
    fn = report.function
    assert fn is not None
    back, lost = dump(fn, platform)
    assert lost == []
    again = validate(back, platform)
    assert again.function == fn
    # And every other dialect that carries HTTP functions can take it.
    for other in ("voicefn", "vapi", "retell", "elevenlabs", "openai"):
        dump(fn, other)


def test_vapi_messages_async_and_timeout() -> None:
    data = example("vapi/tools-calling-get-weather.json")
    report = validate(data)
    fn = report.function
    assert fn is not None
    assert fn.filler == "Checking the weather forecast. Please wait..."
    assert fn.http.method == "POST"
    assert fn.http.timeout_ms == 20_000  # Vapi's default when timeoutSeconds is not set
    kept = fn.platform_fields["vapi"]["messages"]
    assert [m["type"] for m in kept] == [
        "request-complete",
        "request-failed",
        "request-response-delayed",
    ]
    assert any(p.path == "$.messages" and p.severity == "warning" for p in report.problems)
    back, _ = dump(fn, "vapi")
    assert back["messages"] == data["messages"]
    transfer = validate(example("vapi/call-dynamic-transfers-transfer-call.json"))
    assert transfer.function is not None
    assert transfer.function.platform_fields == {"vapi": {"async": True}}
    assert any(p.path == "$.async" for p in transfer.warnings)
    assert dump(transfer.function, "vapi")[0]["async"] is True


def test_vapi_multilingual_start_message_and_liquid_variables() -> None:
    doc = {
        "type": "function",
        "function": {
            "name": "check_order",
            "description": "Check an order.",
            "parameters": {"type": "object", "properties": {}},
        },
        "messages": [
            {
                "type": "request-start",
                "contents": [
                    {"type": "text", "text": "One moment, {{customer_name}}.", "language": "en"},
                    {"type": "text", "text": "Un momento.", "language": "es"},
                ],
                "blocking": True,
            }
        ],
        "server": {
            "url": "https://api.example.com/vapi",
            "timeoutSeconds": 7.5,
            "headers": {"X-Token": "{{token}}"},
        },
    }
    fn = load_function(doc)
    assert fn.filler == {"en": "One moment, {customer_name}.", "es": "Un momento."}
    assert fn.http.headers == {"X-Token": "{token}"}
    assert fn.http.timeout_ms == 7500
    back, lost = dump(fn, "vapi")
    assert lost == []
    assert back["messages"] == doc["messages"]
    assert back["server"] == doc["server"]


async def test_vapi_tools_post_the_tool_calls_message(server: LocalServer) -> None:
    fn = load_function(at(example("vapi/custom-tools-get-weather.json"), f"{server.url}/echo"))
    async with Executor(allow_private_network=True) as ex:
        result = await ex.run(fn, {"location": "Paris"}, CallContext(execution_id="exec-1"))
    assert result.ok
    [sent] = server.received
    assert sent.method == "POST"
    assert sent.json == {
        "message": {
            "type": "tool-calls",
            "toolCallList": [
                {"id": "exec-1", "name": "get_weather", "arguments": {"location": "Paris"}}
            ],
        }
    }


def test_retell_fields() -> None:
    data = example("retell/api-reference-custom-tool-fields.json")
    fn = load_function(data)
    assert fn.filler == "One moment, let me check that."
    assert fn.http.url == "https://api.example.com/user-details?page=1&sort=asc"
    assert fn.http.headers == {"Authorization": "Bearer 1234567890"}
    assert fn.http.param == {
        "name": "get_user_details",
        "args": {"name": "%(name)s", "age": "%(age)i"},
    }
    assert fn.http.timeout_ms == 120_000
    assert fn.platform_fields == {"retell": {"response_variables": {"user_name": "data.user.name"}}}
    flow = load_function(example("retell/api-reference-conversation-flow-tool.json"))
    assert (flow.http.method, flow.http.param) == ("GET", {})
    assert flow.platform_fields == {"retell": {"tool_id": "tool_001"}}


def test_retell_prompt_messages_long_timeouts_and_silence_after_are_kept() -> None:
    doc = {
        "type": "custom",
        "name": "book",
        "description": "Book a table.",
        "url": "https://api.example.com/book",
        "speak_during_execution": True,
        "execution_message_description": "Tell the caller you are booking it.",
        "speak_after_execution": False,
        "timeout_ms": 300_000,
        "args_at_root": True,
        "headers": {"X-Tier": "{{customer_tier}}"},
        "parameters": {
            "type": "object",
            "properties": {"time": {"type": "string", "description": "When"}},
        },
    }
    report = validate(doc)
    fn = report.function
    assert fn is not None
    assert fn.filler is None  # a prompt, not a line: voicefn does not speak it
    assert fn.http.timeout_ms == 120_000
    assert fn.http.param is None  # args_at_root: the arguments are the body
    assert fn.http.headers == {"X-Tier": "{customer_tier}"}
    paths = {p.path for p in report.warnings}
    assert {"$.execution_message_description", "$.speak_after_execution", "$.timeout_ms"} <= paths
    back, lost = dump(fn, "retell")
    assert lost == []
    for key in (
        "execution_message_description",
        "speak_after_execution",
        "timeout_ms",
        "args_at_root",
        "headers",
    ):
        assert back[key] == doc[key], key
    assert back["execution_message_type"] == "prompt"


async def test_retell_sends_name_and_args(server: LocalServer) -> None:
    fn = load_function(
        at(example("retell/api-reference-custom-tool-fields.json"), f"{server.url}/echo")
    )
    async with Executor(allow_private_network=True) as ex:
        result = await ex.run(fn, {"name": "Ana", "age": 41})
    assert result.ok
    [sent] = server.received
    assert sent.query == {"page": ["1"], "sort": ["asc"]}
    assert sent.json == {"name": "get_user_details", "args": {"name": "Ana", "age": 41}}
    assert sent.headers["Authorization"] == "Bearer 1234567890"


def test_elevenlabs_dashboard_form_nested_bodies_and_secrets() -> None:
    report = validate(example("elevenlabs/zendesk-zendesk_open_ticket.json"))
    fn = report.function
    assert fn is not None
    assert fn.http.method == "POST"
    assert fn.http.param == {"ticket": "%(ticket)s"}
    ticket = fn.properties["ticket"]
    assert ticket["type"] == "object"
    assert set(ticket["properties"]) == {"comment", "subject", "requester"}
    assert ticket["properties"]["requester"]["required"] == ["email", "name"]
    assert fn.required == ["ticket"]
    assert fn.http.headers["Authorization"] == "{secret_your_secret}"
    assert any("ElevenLabs secret" in p.message for p in report.warnings)
    comments = load_function(example("elevenlabs/zendesk-zendesk_get_ticket_comments.json"))
    assert (
        comments.http.url
        == "https://your-subdomain.zendesk.com/api/v2/tickets/%(ticket_id)s/comments.json"
    )
    assert comments.http.timeout_ms == 20_000
    resolved = load_function(example("elevenlabs/zendesk-zendesk_get_resolved_tickets.json"))
    assert resolved.http.url.endswith("/search.json?query=type:ticket+status:solved")


def test_elevenlabs_dynamic_variables_constants_and_api_form() -> None:
    doc = {
        "type": "webhook",
        "name": "lookup_caller",
        "description": "Look up the caller's account.",
        "response_timeout_secs": 10,
        "force_pre_tool_speech": True,
        "api_schema": {
            "url": "https://crm.example.com/accounts/{account}",
            "method": "POST",
            "content_type": "application/x-www-form-urlencoded",
            "path_params_schema": {
                "account": {"type": "string", "description": "The account number"}
            },
            "query_params_schema": {
                "properties": {
                    "caller": {"type": "string", "dynamic_variable": "system__caller_id"}
                },
                "required": ["caller"],
            },
            "request_body_schema": {
                "type": "object",
                "properties": {
                    "source": {"type": "string", "constant_value": "voice"},
                    "note": {"type": "string", "description": "What the caller wants"},
                    "internal": {"type": "string", "is_omitted": True},
                },
                "required": ["note"],
            },
            "request_headers": {"X-Tenant": {"variable_name": "tenant"}, "X-Fixed": "a {{b}} c"},
        },
    }
    report = validate(doc)
    fn = report.function
    assert fn is not None, [str(p) for p in report.errors]
    assert fn.http.url == "https://crm.example.com/accounts/%(account)s?caller={from_number}"
    assert fn.http.param == {"source": "voice", "note": "%(note)s"}
    assert set(fn.properties) == {"account", "note"}
    assert fn.http.headers == {
        "X-Tenant": "{tenant}",
        "X-Fixed": "a {b} c",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    assert fn.http.timeout_ms == 10_000
    assert fn.platform_fields == {"elevenlabs": {"force_pre_tool_speech": True}}
    back, lost = dump(fn, "elevenlabs")
    assert lost == []
    api = back["api_schema"]
    assert (
        api["query_params_schema"]["properties"]["caller"]["dynamic_variable"]
        == "system__caller_id"
    )
    assert api["request_body_schema"]["properties"]["source"]["constant_value"] == "voice"
    assert api["content_type"] == "application/x-www-form-urlencoded"
    assert api["request_headers"] == {
        "X-Tenant": {"variable_name": "tenant"},
        "X-Fixed": "a {{b}} c",
    }
    assert validate(back).function == fn


async def test_elevenlabs_sends_path_query_and_body(server: LocalServer) -> None:
    fn = load_function(
        at(example("elevenlabs/salesforce-salesforce_create_record.json"), server.url)
    )
    args = {"object_type": "Lead", "LastName": "Okafor", "Company": "Acme", "Email": "a@b.example"}
    async with Executor(allow_private_network=True) as ex:
        missing = await ex.run(fn, {"object_type": "Lead", "LastName": "Okafor"})
        await ex.run(fn, args)
    assert missing.data["missing"] == ["Email"]  # required in the docs' tool JSON
    [sent] = server.received
    assert sent.path == "/services/data/v58.0/sobjects/Lead/"
    assert sent.json == {"LastName": "Okafor", "Email": "a@b.example", "Company": "Acme"}
    comments = load_function(
        at(example("elevenlabs/zendesk-zendesk_get_ticket_comments.json"), server.url)
    )
    ctx = CallContext(variables={"secret_your_secret": "Basic dXNlcjpwYXNz"})
    async with Executor(allow_private_network=True) as ex:
        await ex.run(comments, {"ticket_id": "4711"}, ctx)
    assert server.received[1].path == "/api/v2/tickets/4711/comments.json"
    assert server.received[1].headers["Authorization"] == "Basic dXNlcjpwYXNz"


def test_typos_are_named_and_unknown_fields_kept() -> None:
    doc = example("vapi/custom-tools-get-weather.json")
    doc["servr"] = doc.pop("server")
    report = validate(doc, "vapi")
    assert any(p.path == "$.servr" and "did you mean 'server'?" in p.fix for p in report.errors)
    retell = example("retell/api-reference-conversation-flow-tool.json")
    retell["speak_during_executon"] = True
    retell["brand_new_retell_field"] = {"x": 1}
    report = validate(retell)
    assert any("did you mean 'speak_during_execution'?" in p.fix for p in report.errors)
    retell.pop("speak_during_executon")
    fn = load_function(retell)
    assert fn.platform_fields["retell"]["brand_new_retell_field"] == {"x": 1}
    assert dump(fn, "retell")[0]["brand_new_retell_field"] == {"x": 1}


def test_look_alikes_are_told_apart() -> None:
    openai_tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    call2me = {
        "name": "f",
        "url": "https://x.example",
        "parameters": {},
        "speak_during_execution": "One moment",
    }
    retell = {"name": "f", "url": "https://x.example", "speak_during_execution": True}
    assert detect(openai_tool) == "openai"
    assert detect(call2me) == "call2me"
    assert detect(retell) == "retell"
    assert detect(example("vapi/custom-tools-get-weather.json")) == "vapi"


def test_converting_between_platforms_says_what_is_lost(tmp_path: Path) -> None:
    source = tmp_path / "vapi.json"
    source.write_text(json.dumps(example("vapi/tools-calling-get-weather.json")))
    done = subprocess.run(
        [VOICEFN, "convert", str(source), "--to", "retell"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    retell = json.loads(done.stdout)
    assert retell["type"] == "custom"
    assert (
        retell["execution_message_description"] == "Checking the weather forecast. Please wait..."
    )
    # Vapi's server reads the tool-calls message: Retell sends {name, args} instead.
    assert "the param template" in done.stderr
    to_eleven = subprocess.run(
        [VOICEFN, "convert", str(source), "--to", "elevenlabs", "--json"],
        capture_output=True,
        text=True,
    )
    out = json.loads(to_eleven.stdout)
    assert out["output"]["type"] == "webhook"
    assert any("filler line" in w for w in out["warnings"])
