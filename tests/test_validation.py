"""Tests for validation: every problem at once, with a path in the user's own dialect, what was
found and how to fix it."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from typer.testing import CliRunner

from voicefn import FunctionValidationError, load_function
from voicefn.cli import app
from voicefn.dialects import Report, validate
from voicefn.validation import Problem, did_you_mean, json_path, validate_document


def by_path(report: Report, severity: str = "error") -> dict[str, list[Problem]]:
    out: dict[str, list[Problem]] = {}
    for p in report.problems:
        if p.severity == severity:
            out.setdefault(p.path, []).append(p)
    return out


def only(report: Report, path: str, severity: str = "error") -> Problem:
    """The single problem reported at ``path``; fails when it is missing or reported twice."""
    found = by_path(report, severity).get(path, [])
    assert len(found) == 1, (
        f"expected one {severity} at {path}, got {found}; all: {report.problems}"
    )
    return found[0]


def voicefn_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "check_order_status",
        "description": "Use when the caller asks where their order is",
        "parameters": {
            "type": "object",
            "properties": {
                "order_id": {"type": "string", "description": "The order ID, starts with ORD-"}
            },
            "required": ["order_id"],
        },
        "action": {
            "method": "GET",
            "url": "https://api.example.com/orders",
            "param": {"order_id": "%(order_id)s"},
        },
    }
    for key, value in changes.items():
        if key == "action_changes":
            doc["action"].update(value)
        else:
            doc[key] = value
    return doc


def bolna_doc() -> dict[str, Any]:
    return {
        "name": "check_order_status",
        "description": "Use when the caller asks about their order status",
        "pre_call_message": "Let me check.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "The order ID"}},
            "required": ["order_id"],
        },
        "key": "custom_task",
        "value": {
            "method": "GET",
            "param": {"order_id": "%(order_id)s"},
            "url": "https://api.yourstore.com/orders",
            "api_token": "Bearer sk_live_abc123",
            "headers": {},
        },
    }


# ------------------------------------------------------------- many problems, all at once

BOLNA_MANY = {
    "name": "check order status",
    "descripton": "Use when the caller asks about their order",
    "pre_call_message": "One moment",
    "parameters": {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "description": "The order ID"},
            "quantity": {"type": "integer"},
            "note": {"type": "string", "description": "A note"},
        },
        "required": ["order_id", "quantiy"],
    },
    "key": "custom_function",
    "value": {
        "method": "FETCH",
        "url": "/orders",
        "param": {
            "order_id": "%(order_id)s",
            "qty": "%(quantity)i",
            "id2": "%(ordr_id)s",
            "who": "{customer_name}",
        },
        "headers": {"X-Order": "%(order_id)s"},
    },
}

BOLNA_MANY_ERRORS = {
    "$.name",
    "$.descripton",
    "$.description",
    "$.parameters.required[1]",
    "$.key",
    "$.value.method",
    "$.value.url",
    "$.value.param.id2",
    "$.value.headers.X-Order",
}
BOLNA_MANY_WARNINGS = {
    "$.parameters.properties.quantity.description",
    "$.parameters.properties.note",
    "$.value.param.who",
}


def test_bolna_document_reports_every_problem_at_once() -> None:
    report = validate(copy.deepcopy(BOLNA_MANY))
    assert report.dialect == "bolna"
    assert report.function is None
    assert not report.ok
    assert len(report.errors) == len(BOLNA_MANY_ERRORS) == 9
    assert {p.path for p in report.errors} == BOLNA_MANY_ERRORS
    assert len(report.warnings) == len(BOLNA_MANY_WARNINGS) == 3
    assert {p.path for p in report.warnings} == BOLNA_MANY_WARNINGS
    for p in report.problems:
        assert p.fix.strip(), p
        assert p.message.strip(), p


def test_bolna_problems_carry_found_and_fix() -> None:
    report = validate(copy.deepcopy(BOLNA_MANY))
    name = only(report, "$.name")
    assert name.found == "check order status"
    assert "check_order_status" in name.fix
    assert only(report, "$.key").found == "custom_function"
    assert "custom_task" in only(report, "$.key").fix
    assert only(report, "$.value.method").found == "FETCH"
    assert "POST" in only(report, "$.value.method").fix
    assert only(report, "$.value.url").found == "/orders"
    assert "https://" in only(report, "$.value.url").fix
    req = only(report, "$.parameters.required[1]")
    assert req.found == "quantiy"
    assert "'quantity'" in req.fix
    ph = only(report, "$.value.param.id2")
    assert ph.found == "%(ordr_id)s"
    assert "%(order_id)s" in ph.fix
    assert "description" in only(report, "$.descripton").fix
    assert only(report, "$.value.headers.X-Order").found == "%(order_id)s"


def test_declared_dynamic_variable_silences_its_warning() -> None:
    report = validate(copy.deepcopy(BOLNA_MANY), variables=["customer_name"])
    assert len(report.errors) == 9
    assert {p.path for p in report.warnings} == BOLNA_MANY_WARNINGS - {"$.value.param.who"}


def test_call2me_document_reports_every_problem_at_once() -> None:
    doc = {
        "name": "get order status",
        "description": "",
        "url": "your-api.com/order-status",
        "method": "FETCH",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["orderid"],
        },
        "speak_during_execution": "   ",
        "timeout_ms": 0,
        "timeout": 4000,
    }
    report = validate(doc)
    assert report.dialect == "call2me"
    assert {p.path for p in report.errors} == {
        "$.name",
        "$.description",
        "$.url",
        "$.method",
        "$.parameters.required[0]",
        "$.speak_during_execution",
        "$.timeout_ms",
        "$.timeout",
    }
    assert len(report.errors) == 8
    assert [p.path for p in report.warnings] == ["$.parameters.properties.order_id.description"]
    assert only(report, "$.url").found == "your-api.com/order-status"
    assert "timeout_ms" in only(report, "$.timeout").fix
    assert "'order_id'" in only(report, "$.parameters.required[0]").fix


def test_callkaro_document_reports_every_problem_at_once() -> None:
    doc = {
        "type": "in_call",
        "mode": "basic",
        "name": "check stock",
        "description": "Check product availability when customer asks if an item is in stock",
        "api_url": "api.example.com/inventory",
        "method": "FETCH",
        "headers": {"Authorization": "Bearer x", "X-Ref": "{agent_id}"},
        "parameters": [
            {"key": "product_id", "type": "string", "description": "The product identifier"},
            {"key": "quantity", "type": "float", "description": "Quantity to purchase"},
            {"key": "color", "type": "string"},
        ],
    }
    report = validate(doc)
    assert report.dialect == "callkaro"
    assert {p.path for p in report.errors} == {
        "$.name",
        "$.api_url",
        "$.method",
        "$.parameters[1].type",
    }
    # One problem, one report: the unsupported type must not be listed twice.
    assert len(report.errors) == 4
    assert only(report, "$.parameters[1].type").found == "float"
    assert only(report, "$.api_url").found == "api.example.com/inventory"
    assert [p.path for p in report.warnings] == ["$.parameters[2].description"]


def test_call2me_wrong_filler_type_is_one_problem_at_the_users_path() -> None:
    doc = {
        "name": "get_order_status",
        "description": "Look up an order",
        "url": "https://your-api.com/order-status",
        "parameters": {"type": "object", "properties": {}},
        "speak_during_execution": 5,
    }
    report = validate(doc)
    assert not report.ok
    # The path is the user's field, not our internal union member names ("...str").
    assert [p.path for p in report.errors] == ["$.speak_during_execution"]
    assert report.errors[0].found == 5


def test_voicefn_wrong_filler_type_is_one_problem_at_filler() -> None:
    report = validate(voicefn_doc(filler=["not", "a", "filler"]), "voicefn")
    assert [p.path for p in report.errors] == ["$.filler"]


def test_bolna_missing_value_is_reported_once() -> None:
    doc = bolna_doc()
    del doc["value"]
    report = validate(doc)
    assert report.dialect == "bolna"
    assert [p.path for p in report.errors] == ["$.value"]


def test_callkaro_paths_for_parameters_and_url() -> None:
    doc = {
        "name": "check_stock",
        "description": "Check stock",
        "api_url": "/inventory",
        "method": "GET",
        "parameters": [
            {"key": "product_id", "type": "string", "description": "The product"},
            {"key": "quantity", "type": "decimal", "description": "Quantity"},
        ],
    }
    report = validate(doc)
    assert {p.path for p in report.errors} == {"$.api_url", "$.parameters[1].type"}


# ------------------------------------------------------------------------ did you mean


def test_did_you_mean_for_placeholder_names() -> None:
    doc = voicefn_doc(action_changes={"param": {"order_id": "%(order_Id)s"}})
    report = validate(doc, "voicefn")
    problem = only(report, "$.action.param.order_id")
    assert "%(order_id)s" in problem.fix
    assert problem.found == "%(order_Id)s"


def test_placeholder_with_no_near_miss_says_how_to_declare() -> None:
    doc = voicefn_doc(action_changes={"param": {"x": "%(zzzzzz)s", "order_id": "%(order_id)s"}})
    problem = only(validate(doc, "voicefn"), "$.action.param.x")
    assert "did you mean" not in problem.fix
    assert "zzzzzz" in problem.fix


def test_did_you_mean_in_required() -> None:
    doc = voicefn_doc()
    doc["parameters"]["required"] = ["orderId"]
    problem = only(validate(doc, "voicefn"), "$.parameters.required[0]")
    assert "'order_id'" in problem.fix
    assert problem.found == "orderId"


@pytest.mark.parametrize(
    ("dialect", "doc", "typo", "meant"),
    [
        ("bolna", {**bolna_doc(), "pre_call_mesage": "x"}, "pre_call_mesage", "pre_call_message"),
        ("bolna", {**bolna_doc(), "descriptoin": "x"}, "descriptoin", "description"),
        (
            "call2me",
            {
                "name": "f",
                "description": "d",
                "url": "https://a.example.com",
                "parameters": {"type": "object", "properties": {}},
                "speak_during_executon": "Hold on",
            },
            "speak_during_executon",
            "speak_during_execution",
        ),
        (
            "callkaro",
            {
                "name": "f",
                "description": "d",
                "api_url": "https://a.example.com",
                "method": "GET",
                "paramters": [],
            },
            "paramters",
            "parameters",
        ),
        ("voicefn", {**voicefn_doc(), "descripton": "x"}, "descripton", "description"),
    ],
)
def test_did_you_mean_for_misspelt_top_level_fields(
    dialect: str, doc: dict[str, Any], typo: str, meant: str
) -> None:
    report = validate(doc)
    assert report.dialect == dialect
    assert not report.ok
    problem = only(report, f"$.{typo}")
    assert repr(meant) in problem.fix or meant in problem.fix


def test_did_you_mean_helper() -> None:
    assert did_you_mean("order_Id", ["order_id", "quantity"]) == "order_id"
    assert did_you_mean("ORDER_ID", ["order_id"]) == "order_id"
    assert did_you_mean("xyz", ["order_id", "quantity"]) is None
    assert did_you_mean("order_id", ["order_id"]) is None


def test_json_path_quotes_odd_keys() -> None:
    assert json_path(("value", "param", "order_id")) == "$.value.param.order_id"
    assert json_path(("parameters", 1, "type")) == "$.parameters[1].type"
    assert json_path(("headers", "X-Id")) == "$.headers.X-Id"
    assert json_path(("a b", "é")) == '$["a b"]["é"]'
    assert json_path(()) == "$"


# ------------------------------------------------------------------------------- name rules


@pytest.mark.parametrize("name", ["a", "get_order_status", "Get-Order-2", "_", "-", "a" * 64])
def test_valid_names(name: str) -> None:
    report = validate(voicefn_doc(name=name), "voicefn")
    assert report.ok, report.problems
    assert report.function is not None
    assert report.function.name == name


@pytest.mark.parametrize(
    "name", ["", "a" * 65, "get order", "get.order", "naïve", "get/order", "tab\tname", "ok\n"]
)
def test_invalid_names(name: str) -> None:
    report = validate(voicefn_doc(name=name), "voicefn")
    assert not report.ok
    problem = only(report, "$.name")
    assert problem.found == name


def test_name_with_spaces_gets_a_fix_with_underscores() -> None:
    problem = only(validate(voicefn_doc(name="get order status"), "voicefn"), "$.name")
    assert "'get_order_status'" in problem.fix


def test_name_65_chars_fix_is_a_valid_name() -> None:
    problem = only(validate(voicefn_doc(name="b" * 65), "voicefn"), "$.name")
    assert "'" + "b" * 64 + "'" in problem.fix


def test_missing_name_is_an_error() -> None:
    doc = voicefn_doc()
    del doc["name"]
    report = validate(doc, "voicefn")
    assert "$.name" in by_path(report)


# ------------------------------------------------------------------ description and phases


@pytest.mark.parametrize("description", [None, "", "   ", "\n"])
def test_in_call_needs_a_description(description: str | None) -> None:
    doc = voicefn_doc(phase="in_call")
    if description is None:
        del doc["description"]
    else:
        doc["description"] = description
    report = validate(doc, "voicefn")
    assert not report.ok
    only(report, "$.description")


@pytest.mark.parametrize("phase", ["pre_call", "post_call"])
@pytest.mark.parametrize("description", [None, ""])
def test_pre_and_post_call_need_no_description(phase: str, description: str | None) -> None:
    doc = voicefn_doc(phase=phase)
    if description is None:
        del doc["description"]
    else:
        doc["description"] = description
    report = validate(doc, "voicefn")
    assert report.ok, report.problems
    assert report.function is not None
    assert report.function.phase == phase


def test_default_phase_is_in_call_and_needs_description() -> None:
    doc = voicefn_doc()
    del doc["description"]
    assert "$.description" in by_path(validate(doc, "voicefn"))


def test_unknown_phase() -> None:
    problem = only(validate(voicefn_doc(phase="during_call"), "voicefn"), "$.phase")
    assert problem.found == "during_call"
    assert "in_call" in problem.fix


@pytest.mark.parametrize(
    "doc",
    [
        {**bolna_doc(), "description": ""},
        {
            "name": "f",
            "description": "",
            "url": "https://a.example.com",
            "parameters": {"type": "object", "properties": {}},
            "speak_during_execution": "Hold on",
        },
        {"name": "f", "description": "", "api_url": "https://a.example.com", "method": "GET"},
    ],
)
def test_platform_dialects_are_in_call_and_need_description(doc: dict[str, Any]) -> None:
    report = validate(doc)
    only(report, "$.description")


# ------------------------------------------------------------------------------ bolna key


@pytest.mark.parametrize("key", ["custom_function", "Custom_Task", "custom_task ", "", None, 1])
def test_bolna_key_must_be_exactly_custom_task(key: Any) -> None:
    doc = bolna_doc()
    doc["key"] = key
    report = validate(doc, "bolna")
    assert not report.ok
    problem = only(report, "$.key")
    assert problem.found == key
    assert '"custom_task"' in problem.fix


def test_bolna_key_missing_is_an_error() -> None:
    doc = bolna_doc()
    del doc["key"]
    report = validate(doc)
    assert report.dialect == "bolna"
    only(report, "$.key")


def test_bolna_valid_document_is_ok() -> None:
    report = validate(bolna_doc())
    assert report.ok, report.problems
    assert report.problems == []
    assert report.function is not None
    assert report.function.action.token == "Bearer sk_live_abc123"
    assert report.function.filler == "Let me check."


# ------------------------------------------------------------------------ method and URL


@pytest.mark.parametrize("method", ["FETCH", "", 5, "CONNECT", "GETT"])
def test_bad_method(method: Any) -> None:
    report = validate(voicefn_doc(action_changes={"method": method}), "voicefn")
    problem = only(report, "$.action.method")
    assert problem.found == method


def test_missing_method() -> None:
    doc = voicefn_doc()
    del doc["action"]["method"]
    assert "$.action.method" in by_path(validate(doc, "voicefn"))


@pytest.mark.parametrize("method", ["get", "Post", "PUT", "patch", "DELETE"])
def test_method_case_is_normalised(method: str) -> None:
    report = validate(voicefn_doc(action_changes={"method": method}), "voicefn")
    assert report.ok, report.problems
    assert report.function is not None
    assert report.function.action.method == method.upper()


@pytest.mark.parametrize(
    "url",
    [
        "/orders",
        "orders",
        "api.example.com/orders",
        "ftp://api.example.com/orders",
        "https://",
        "https:///orders",
        "mailto:someone@example.com",
        "",
    ],
)
def test_relative_or_non_http_url_rejected(url: str) -> None:
    report = validate(voicefn_doc(action_changes={"url": url}), "voicefn")
    problem = only(report, "$.action.url")
    assert problem.found == url


def test_url_with_space_rejected() -> None:
    url = "https://api.example.com/my orders"
    problem = only(validate(voicefn_doc(action_changes={"url": url}), "voicefn"), "$.action.url")
    assert "%20" in problem.fix


@pytest.mark.parametrize(
    "url",
    [
        "https://%(order_id)s.example.com/orders",
        "https://{agent_id}.example.com/orders",
        "https://api.%(order_id)s/orders",
        "https://user:%(order_id)s@api.example.com/orders",
        "%(order_id)s://api.example.com/orders",
    ],
)
def test_placeholder_in_url_scheme_or_host_rejected(url: str) -> None:
    report = validate(voicefn_doc(action_changes={"url": url}), "voicefn")
    assert not report.ok
    problem = only(report, "$.action.url")
    assert problem.found == url


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/orders/%(order_id)s",
        "https://api.example.com/orders/%(order_id)s/items?agent={agent_id}",
        "https://api.example.com/orders?id=%(order_id)s&from={from_number}",
        "http://api.example.com:8080/%(order_id)s",
    ],
)
def test_placeholders_in_url_path_and_query_accepted(url: str) -> None:
    doc = voicefn_doc(action_changes={"url": url, "param": None})
    report = validate(doc, "voicefn")
    assert report.ok, report.problems
    assert report.errors == []


def test_url_placeholder_counts_as_sending_the_parameter() -> None:
    doc = voicefn_doc(
        action_changes={"url": "https://api.example.com/orders/%(order_id)s", "param": {}}
    )
    report = validate(doc, "voicefn")
    assert report.ok
    assert report.warnings == []


def test_url_placeholder_must_name_a_parameter() -> None:
    doc = voicefn_doc(action_changes={"url": "https://api.example.com/orders/%(ordr_id)s"})
    problem = only(validate(doc, "voicefn"), "$.action.url")
    assert "%(order_id)s" in problem.fix


# --------------------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    "value", ["%(order_id)s", "Bearer %(order_id)s", "%(order_id)i", "%(order_id)"]
)
def test_specifiers_in_headers_rejected(value: str) -> None:
    doc = voicefn_doc(action_changes={"headers": {"X-Order": value}})
    report = validate(doc, "voicefn")
    assert not report.ok
    problem = only(report, "$.action.headers.X-Order")
    assert problem.found == value


def test_bolna_header_specifier_path_is_in_value() -> None:
    doc = bolna_doc()
    doc["value"]["headers"] = {"X-Order": "%(order_id)s"}
    only(validate(doc), "$.value.headers.X-Order")


def test_context_variables_in_headers_accepted() -> None:
    doc = voicefn_doc(action_changes={"headers": {"X-Agent": "{agent_id}", "X-Call": "{call_sid}"}})
    report = validate(doc, "voicefn")
    assert report.ok, report.problems
    assert report.problems == []


def test_literal_percent_in_header_is_fine() -> None:
    doc = voicefn_doc(action_changes={"headers": {"X-Discount": "50% off"}})
    assert validate(doc, "voicefn").problems == []


def test_header_line_break_rejected() -> None:
    doc = voicefn_doc(action_changes={"headers": {"X-A": "one\r\nX-Injected: two"}})
    only(validate(doc, "voicefn"), "$.action.headers.X-A")


@pytest.mark.parametrize("name", ["X A", "X-A\n", "X:A", ""])
def test_invalid_header_name_rejected(name: str) -> None:
    doc = voicefn_doc(action_changes={"headers": {name: "v"}})
    report = validate(doc, "voicefn")
    assert not report.ok
    problem = only(report, json_path(("action", "headers", name)))
    assert problem.found == name


# -------------------------------------------------------------------------------- warnings


def test_unused_parameter_is_a_warning() -> None:
    doc = voicefn_doc()
    doc["parameters"]["properties"]["note"] = {"type": "string", "description": "A note"}
    report = validate(doc, "voicefn")
    assert report.ok
    assert report.function is not None
    problem = only(report, "$.parameters.properties.note", "warning")
    assert "%(note)s" in problem.fix
    assert report.errors == []


def test_parameter_without_description_is_a_warning() -> None:
    doc = voicefn_doc()
    doc["parameters"]["properties"]["order_id"] = {"type": "string"}
    report = validate(doc, "voicefn")
    assert report.ok
    only(report, "$.parameters.properties.order_id.description", "warning")


def test_bolna_unused_and_undescribed_warning_paths() -> None:
    doc = bolna_doc()
    doc["parameters"]["properties"]["quantity"] = {"type": "integer"}
    report = validate(doc)
    assert report.ok
    assert {p.path for p in report.warnings} == {
        "$.parameters.properties.quantity",
        "$.parameters.properties.quantity.description",
    }


def test_undeclared_dynamic_variable_is_a_warning_unless_declared() -> None:
    doc = voicefn_doc(
        action_changes={"param": {"order_id": "%(order_id)s", "name": "{customer_name}"}}
    )
    report = validate(doc, "voicefn")
    assert report.ok
    problem = only(report, "$.action.param.name", "warning")
    assert "customer_name" in problem.message or "customer_name" in problem.fix
    declared = validate(doc, "voicefn", variables=["customer_name"])
    assert declared.ok
    assert declared.problems == []


def test_near_miss_of_a_declared_variable_is_an_error() -> None:
    doc = voicefn_doc(
        action_changes={"param": {"order_id": "%(order_id)s", "name": "{customer_nam}"}}
    )
    report = validate(doc, "voicefn", variables=["customer_name"])
    problem = only(report, "$.action.param.name")
    assert "{customer_name}" in problem.fix


def test_near_miss_of_a_system_variable_is_an_error() -> None:
    doc = voicefn_doc(action_changes={"param": {"order_id": "%(order_id)s", "a": "{agentid}"}})
    problem = only(validate(doc, "voicefn"), "$.action.param.a")
    assert "{agent_id}" in problem.fix


def test_variable_braces_around_a_parameter_name_is_an_error() -> None:
    doc = voicefn_doc(action_changes={"param": {"order_id": "{order_id}"}})
    problem = only(validate(doc, "voicefn"), "$.action.param.order_id")
    assert "%(order_id)s" in problem.fix


def test_system_variable_placeholder_needs_no_parameter() -> None:
    doc = voicefn_doc(
        action_changes={"param": {"order_id": "%(order_id)s", "phone": "%(from_number)s"}}
    )
    assert validate(doc, "voicefn").problems == []


# -------------------------------------------------------------------- Report and the CLI


def test_report_with_only_warnings_is_ok() -> None:
    doc = voicefn_doc()
    doc["parameters"]["properties"]["order_id"] = {"type": "string"}
    report = validate(doc, "voicefn")
    assert report.ok
    assert report.errors == []
    assert len(report.warnings) == 1
    assert report.function is not None


def test_report_with_an_error_is_not_ok_and_has_no_function() -> None:
    report = validate(voicefn_doc(name="bad name"), "voicefn")
    assert not report.ok
    assert report.function is None
    assert [p.severity for p in report.errors] == ["error"]


def test_undetectable_document() -> None:
    report = validate({"hello": "world"})
    assert report.dialect is None
    assert not report.ok
    assert [p.path for p in report.errors] == ["$"]


def test_non_object_document() -> None:
    report = validate(["not", "an", "object"], "voicefn")
    assert not report.ok
    assert [p.path for p in report.errors] == ["$"]


def test_validate_document_returns_function_only_without_errors() -> None:
    function, problems = validate_document(voicefn_doc())
    assert function is not None
    assert problems == []
    function, problems = validate_document(voicefn_doc(name="x y", phase="nope"))
    assert function is None
    assert {p.path for p in problems} == {"$.name", "$.phase"}


def test_validate_document_locate_rewrites_paths() -> None:
    def locate(path: tuple[str | int, ...]) -> tuple[str | int, ...]:
        return ("mine", *path)

    _, problems = validate_document(voicefn_doc(name="x y"), locate=locate)
    assert [p.path for p in problems] == ["$.mine.name"]


def test_function_validation_error_lists_every_error() -> None:
    doc = copy.deepcopy(BOLNA_MANY)
    with pytest.raises(FunctionValidationError) as info:
        load_function(doc)
    exc = info.value
    message = str(exc)
    assert message.startswith("9 problem(s)")
    for path in BOLNA_MANY_ERRORS:
        assert path in message
    assert message.count("\n  - error: ") == 9
    # Warnings are kept on the exception but do not clutter the message.
    assert {p.path for p in exc.problems if p.severity == "warning"} == BOLNA_MANY_WARNINGS
    for path in BOLNA_MANY_WARNINGS - {"$.value.param.who"}:
        assert f"warning: {path}:" not in message


def test_function_validation_error_names_the_file(tmp_path: Any) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(BOLNA_MANY), encoding="utf-8")
    with pytest.raises(FunctionValidationError) as info:
        load_function(path)
    assert str(info.value).startswith(f"{path}: 9 problem(s)")
    assert info.value.source == str(path)


def test_problem_str_and_dict() -> None:
    p = Problem("$.a", "bad thing", "do this", found="x")
    assert str(p) == 'error: $.a: bad thing (found "x"). Fix: do this'
    assert p.to_dict() == {
        "severity": "error",
        "path": "$.a",
        "message": "bad thing",
        "found": "x",
        "fix": "do this",
    }
    assert str(Problem("$", "m", "f", severity="warning")) == "warning: $: m. Fix: f"


def test_cli_validate_exit_codes_and_json(tmp_path: Any) -> None:
    good = tmp_path / "good.json"
    warn = voicefn_doc()
    warn["parameters"]["properties"]["order_id"] = {"type": "string"}
    good.write_text(json.dumps(warn), encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(BOLNA_MANY), encoding="utf-8")
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", "--json", str(good)])
    assert ok.exit_code == 0, ok.output
    [entry] = json.loads(ok.stdout)
    assert entry["valid"] is True
    assert [p["severity"] for p in entry["problems"]] == ["warning"]
    failed = runner.invoke(app, ["validate", "--json", str(good), str(bad)])
    assert failed.exit_code == 1
    entries = json.loads(failed.stdout)
    assert [e["valid"] for e in entries] == [True, False]
    assert sum(p["severity"] == "error" for p in entries[1]["problems"]) == 9
    declared = runner.invoke(app, ["validate", "--json", "--var", "customer_name=x", str(bad)])
    paths = {p["path"] for p in json.loads(declared.stdout)[0]["problems"]}
    assert "$.value.param.who" not in paths
    bare = runner.invoke(app, ["validate", "--json", "--var", "customer_name", str(bad)])
    assert bare.exit_code == 2  # one meaning of --var everywhere: key=value
    assert json.loads(bare.stdout)["error"] == "usage"
    assert "key=value" in json.loads(bare.stdout)["message"]


@pytest.mark.parametrize("timeout", [0, -1, 120_001])
def test_timeout_out_of_range_is_reported_at_the_users_path(timeout: int) -> None:
    doc = voicefn_doc(action_changes={"timeout_ms": timeout})
    report = validate(doc, "voicefn")
    assert [p.path for p in report.errors] == ["$.action.timeout_ms"]
    assert report.errors[0].found == timeout
    call2me = {
        "name": "get_order_status",
        "description": "Look up an order",
        "url": "https://your-api.com/order-status",
        "parameters": {"type": "object", "properties": {}},
        "timeout_ms": timeout,
    }
    report = validate(call2me)
    assert [p.path for p in report.errors] == ["$.timeout_ms"]


def test_bolna_pre_call_webhook_paths() -> None:
    doc = bolna_doc()
    doc["value"]["pre_call_webhook_param"] = {"reason": "%(ordr_id)s", "channel": "voice"}
    problem = only(validate(doc), "$.value.pre_call_webhook_param.reason")
    assert "%(order_id)s" in problem.fix
    doc = bolna_doc()
    doc["value"]["pre_call_webhook_url"] = "https://your-api.com/pre-transfer-hook"
    report = validate(doc)
    assert report.ok
    only(report, "$.value.pre_call_webhook_url", "warning")
    doc["value"]["pre_call_webhook_url"] = "/relative-hook"
    doc["value"]["pre_call_webhook_param"] = {"channel": "voice"}
    assert only(validate(doc), "$.value.pre_call_webhook_url").found == "/relative-hook"
