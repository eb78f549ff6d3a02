"""Save-time checks of post-call variables, mappings and `store:`: every problem with its JSON
path, what was found and a fix (a did-you-mean where one fits), from `validate_agent`, the
function validator and `voicefn validate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from voicefn.cli import app
from voicefn.dialects import dump, validate
from voicefn.runtime.agent import validate_agent
from voicefn.spec import Function


def crm(mapping: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "update_crm",
        "phase": "post_call",
        "parameters": {
            "type": "object",
            "properties": {
                "phone": {"type": "string"},
                "email": {"type": "string"},
                "rating": {"type": "integer"},
                "reason": {"type": "string", "enum": ["billing", "shipping"]},
                "status": {"type": "string"},
            },
            "required": ["phone"],
        },
        "mapping": mapping,
        "action": {"type": "http", "method": "POST", "url": "https://crm.example.com/calls"},
        **extra,
    }


def agent(*functions: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "a",
        "variables": {"customer_name": "there", "tier": 3},
        "post_call_variables": [
            {"name": "email", "type": "string", "description": "The email"},
            {"name": "score", "type": "number", "description": "A score"},
            {"name": "reason", "type": "enum", "values": ["billing", "other"], "description": "x"},
        ],
        "functions": list(functions),
        **extra,
    }


def problems(doc: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    report = validate_agent(doc, discover_mcp=False)
    return {p.path: (p.severity, p.message, p.fix) for p in report.all_problems()}


def test_a_valid_agent_with_variables_a_mapping_and_a_store_loads():
    lookup = {
        "name": "lookup",
        "description": "Look up the order",
        "store": {"order_status": "status", "first_item": "items[0].name"},
        "action": {"type": "http", "method": "GET", "url": "https://api.example.com/o"},
    }
    doc = agent(
        lookup,
        crm(
            {
                "phone": "call.from_number",
                "email": {"source": "post_call.email", "default": "unknown@example.com"},
                "status": "variables.order_status",
                "rating": 5,
            }
        ),
        post_call={"summary": True, "outcome": True},
    )
    report = validate_agent(doc)
    assert report.ok, [str(p) for p in report.all_problems()]
    assert report.agent is not None
    assert [v.name for v in report.agent.post_call_variables] == ["email", "score", "reason"]
    assert report.agent.post_call.summary is True
    assert report.agent.functions[0].store == {
        "order_status": "status",
        "first_item": "items[0].name",
    }


def test_unknown_sources_and_type_mismatches_have_paths_and_did_you_mean():
    found = problems(
        agent(
            crm(
                {
                    "phone": "call.from_numbr",
                    "email": "post_call.emial",
                    "rating": "post_call.score",
                    "reason": "post_call.reason",
                    "status": "post_call.summary",
                }
            )
        )
    )
    assert found["$.functions[0].mapping.phone"] == (
        "error",
        "the call has no fact named 'from_numbr'",
        "did you mean call.from_number?",
    )
    # checked against the agent only once the function itself is sound
    doc = agent(
        crm(
            {
                "phone": "call.from_number",
                "email": "post_call.emial",
                "rating": "post_call.score",
                "reason": "post_call.reason",
                "status": "post_call.summary",
            }
        )
    )
    found = problems(doc)
    assert found["$.functions[0].mapping.email"] == (
        "error",
        "the agent declares no post-call variable 'emial'",
        "did you mean post_call.email?",
    )
    severity, message, _ = found["$.functions[0].mapping.rating"]
    assert severity == "error"
    assert message == "post_call.score is a number, but the parameter is declared as integer"
    severity, message, _ = found["$.functions[0].mapping.reason"]
    assert message == (
        'post_call.reason is one of "billing", "other", and "other" is not among the '
        "parameter's enum values"
    )
    assert found["$.functions[0].mapping.status"] == (
        "error",
        "post_call.summary is a built-in extra that is switched off",
        "switch it on in the agent: post_call: {summary: true}",
    )
    assert validate_agent(doc).agent is None


def test_mapping_shape_problems_need_no_agent():
    report = validate(
        crm(
            {
                "phone": "postcall.phone",
                "emial": "call.id",
                "rating": "call.duration_s",
                "status": "shipped",
                "reason": {"static": "billing"},
            }
        )
    )
    found = {p.path: (p.message, p.fix) for p in report.problems if p.severity == "error"}
    assert found["$.mapping.phone"] == (
        "unknown source 'postcall.phone'",
        "did you mean post_call.phone?",
    )
    assert found["$.mapping.emial"][1] == "did you mean 'email'? Parameter names must match exactly"
    assert found["$.mapping.rating"][0] == (
        "call.duration_s is a number, but the parameter is declared as integer"
    )
    assert found["$.mapping.status"] == (
        "'shipped' is not a source; text here names where the value comes from",
        'for a fixed text write {value: "shipped"}; sources start with call., variables., '
        "post_call., transcript",
    )
    assert "{value: ...}" in found["$.mapping.reason"][1]
    assert report.function is None


def test_a_required_parameter_without_a_mapping_and_a_mapping_on_an_in_call_function():
    report = validate(crm({"email": "post_call.email"}))
    found = {p.path: p.message for p in report.problems}
    assert found["$.parameters.required[0]"] == (
        "required parameter 'phone' has no mapping, so the function would never run"
    )
    in_call = crm({"phone": "call.from_number"}, phase="in_call", description="x")
    found = {p.path: p.message for p in validate(in_call).problems}
    assert found["$.mapping"].startswith("mapping fills post-call functions' parameters")
    # a parameter the call context fills needs no mapping
    filled = crm({"email": "post_call.email"})
    filled["parameters"]["required"] = ["from_number"]
    filled["parameters"]["properties"]["from_number"] = {"type": "string"}
    assert validate(filled).ok


def test_store_expressions_and_names_are_checked():
    fn = {
        "name": "lookup",
        "description": "Look up",
        "store": {"status": "status", "2nd": "a.b", "call_sid": "id", "carrier": "items[0"},
        "action": {"type": "http", "method": "GET", "url": "https://api.example.com/o"},
    }
    found = {p.path: (p.message, p.fix, p.found) for p in validate(fn).problems}
    assert found['$.store["2nd"]'][1] == "use 'v_2nd'"
    assert found["$.store.call_sid"][0] == (
        "call_sid is a system variable: the call sets it, a function cannot"
    )
    message, _, shown = found["$.store.carrier"]
    assert message.startswith("not a valid JMESPath expression")
    assert shown == "items[0"
    assert "$.store.status" not in found
    post = {**crm({"phone": "call.from_number"}), "store": {"x": "a"}}
    assert any(p.path == "$.store" for p in validate(post).errors)


def test_post_call_variable_declarations_are_checked():
    found = problems(
        {
            "post_call_variables": [
                {"name": "email", "type": "str", "description": "x"},
                {"name": "reason", "type": "enum", "enum": ["a"], "description": "x"},
                {"name": "email", "type": "list", "items": "text", "description": "x"},
                {"name": "summary", "description": "mine"},
                {"name": "2x", "description": "x"},
                {"name": "ok"},
            ],
            "post_call": {"summary": True, "outcom": True},
        }
    )
    assert found["$.post_call_variables[0].type"][2] == "use 'string'"
    assert found["$.post_call_variables[1].enum"][2] == (
        "write the allowed values under values: (and type: enum)"
    )
    assert found["$.post_call_variables[1].values"][1] == "an enum needs its allowed values"
    assert found["$.post_call_variables[2].name"][1] == (
        "'email' is declared twice (also at post_call_variables[0])"
    )
    assert found["$.post_call_variables[2].items"][2] == "use 'string'"
    assert found["$.post_call_variables[3].name"][1].startswith("post_call.summary is the built-in")
    assert found["$.post_call_variables[4].name"][0] == "error"
    assert found["$.post_call_variables[5].description"][0] == "warning"
    assert found["$.post_call.outcom"][2] == "did you mean 'outcome'?"


def test_store_targets_are_known_variables_for_templates_and_mappings(tmp_path: Path):
    lookup = {
        "name": "lookup",
        "description": "Look up",
        "store": {"order_status": "status"},
        "action": {"type": "http", "method": "GET", "url": "https://api.example.com/o"},
    }
    (tmp_path / "lookup.json").write_text(json.dumps(lookup))
    notify = {
        "name": "notify",
        "description": "Tell the warehouse",
        "action": {
            "type": "http",
            "method": "POST",
            "url": "https://api.example.com/notify",
            "param": {"status": "{order_statsu}"},
        },
    }
    doc = agent(
        "lookup.json",
        notify,
        crm({"phone": "call.from_number", "status": "variables.order_status"}),
        system_prompt="Order status: {order_status}.",
    )
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(doc))
    report = validate_agent(tmp_path / "agent.yaml")
    found = {p.path: p for p in report.all_problems()}
    assert "$.system_prompt" not in found  # stored by lookup: known
    typo = found["$.functions[1].action.param.status"]
    assert typo.fix == "did you mean {order_status}? Variable names must match exactly"
    assert not [p for p in found if p.startswith("$.functions[2].mapping")]


def test_voicefn_validate_reports_mapping_problems_as_json(tmp_path: Path):
    path = tmp_path / "agent.yaml"
    path.write_text(
        yaml.safe_dump(agent(crm({"phone": "call.from_number", "email": "post_call.mail"})))
    )
    result = CliRunner().invoke(app, ["validate", str(path), "--json"])
    assert result.exit_code == 1, result.output
    flat = json.dumps(json.loads(result.output))
    assert "$.functions[0].mapping.email" in flat, flat
    assert "did you mean post_call.email?" in flat


def test_converting_to_a_platform_dialect_says_store_and_mapping_are_lost():
    fn = Function.model_validate(crm({"phone": "call.from_number"}))
    _, lost = dump(fn, "vapi")
    assert "mapping (phone)" in lost
    doc, lost = dump(fn, "voicefn")
    assert doc["mapping"] == {"phone": "call.from_number"}
    assert lost == []
    assert "store" not in doc  # empty fields stay out of documents
