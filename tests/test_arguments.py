"""Tests for voicefn.arguments.bind and llm_parameters: parse, fill from context, coerce, validate."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicefn import ArgumentError, CallContext, Function, bind, llm_parameters, load_function
from voicefn.arguments import parse_arguments

FAST = settings(max_examples=150, deadline=None)

PROPERTIES: dict[str, Any] = {
    "order_id": {"type": "string", "description": "The order ID, usually starts with ORD-"},
    "quantity": {"type": "integer", "description": "Number of items"},
    "price": {"type": "number", "description": "Price in rupees"},
    "gift": {"type": "boolean", "description": "Is it a gift"},
    "size": {"type": "string", "enum": ["S", "M", "L"], "description": "Shirt size"},
    "note": {"type": "string"},
    "from_number": {"type": "string", "description": "The caller's phone number"},
    "agent_id": {"type": "string", "description": "Agent ID"},
    "customer_name": {"type": "string", "description": "Customer's name"},
}


def make_function(required: list[str] | None = None, **props: Any) -> Function:
    properties = props or PROPERTIES
    return Function.model_validate(
        {
            "name": "place_order",
            "description": "Use when the caller wants to order",
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required if required is not None else ["order_id", "quantity"],
            },
            "action": {"method": "POST", "url": "https://api.example.com/orders"},
        }
    )


FN = make_function()


# ---------------------------------------------------------------------------- parsing


def test_json_string_and_dict_give_the_same_values() -> None:
    args = {"order_id": "ORD-1", "quantity": 2, "gift": True}
    assert bind(FN, json.dumps(args)).values == args
    assert bind(FN, args).values == args


def test_unicode_argument_survives() -> None:
    args = {"order_id": "ORD-१२३ 订单 🎉", "quantity": 1, "note": 'a "quoted"\nline\\'}
    assert bind(FN, json.dumps(args, ensure_ascii=False)).values == args


@pytest.mark.parametrize("raw", ['{"order_id": "x",', "{order_id: 1}", "not json", "{'a': 1}"])
def test_malformed_json_is_invalid_arguments(raw: str) -> None:
    with pytest.raises(ArgumentError) as info:
        bind(FN, raw)
    assert info.value.code == "invalid_arguments"
    assert "JSON" in info.value.detail
    assert info.value.missing == []
    assert info.value.payload() == {"error": "invalid_arguments", "detail": info.value.detail}


@pytest.mark.parametrize("raw", ["[1, 2]", '"a string"', "5", "true"])
def test_non_object_json_is_invalid_arguments(raw: str) -> None:
    with pytest.raises(ArgumentError) as info:
        bind(FN, raw)
    assert info.value.code == "invalid_arguments"


@pytest.mark.parametrize("raw", [None, "", "null", "{}", {}])
def test_empty_arguments_are_an_empty_object(raw: Any) -> None:
    assert parse_arguments(raw) == {}
    optional = make_function(required=[])
    assert bind(optional, raw).values == {}


# ------------------------------------------------------------------------------ missing


def test_missing_required_names_each_parameter_and_its_description() -> None:
    with pytest.raises(ArgumentError) as info:
        bind(FN, {"gift": True})
    exc = info.value
    assert exc.code == "missing_arguments"
    assert exc.missing == ["order_id", "quantity"]
    assert "Ask the caller for" in exc.detail
    assert "order_id (The order ID, usually starts with ORD-)" in exc.detail
    assert "quantity (Number of items)" in exc.detail
    assert "place_order" in exc.detail
    assert exc.payload() == {
        "error": "missing_arguments",
        "detail": exc.detail,
        "missing": ["order_id", "quantity"],
    }


def test_missing_required_without_description_names_the_parameter() -> None:
    fn = make_function(required=["note"])
    with pytest.raises(ArgumentError) as info:
        bind(fn, {})
    assert info.value.missing == ["note"]
    assert "note" in info.value.detail


def test_null_for_a_required_parameter_is_missing() -> None:
    with pytest.raises(ArgumentError) as info:
        bind(FN, {"order_id": None, "quantity": 1})
    assert info.value.code == "missing_arguments"
    assert info.value.missing == ["order_id"]


def test_only_the_missing_ones_are_listed() -> None:
    with pytest.raises(ArgumentError) as info:
        bind(FN, {"order_id": "ORD-1"})
    assert info.value.missing == ["quantity"]
    assert "order_id (" not in info.value.detail


# ------------------------------------------------------------------------------- context


def test_context_fills_declared_system_and_dynamic_variables() -> None:
    ctx = CallContext(
        agent_id="7d86b904", from_number="+919876543210", variables={"customer_name": "Bruce"}
    )
    bound = bind(FN, {"order_id": "ORD-1", "quantity": 1}, ctx)
    assert bound.values == {
        "order_id": "ORD-1",
        "quantity": 1,
        "agent_id": "7d86b904",
        "from_number": "+919876543210",
        "customer_name": "Bruce",
    }
    assert sorted(bound.from_context) == ["agent_id", "customer_name", "from_number"]


def test_context_overrides_the_llm() -> None:
    ctx = CallContext(from_number="+919876543210", variables={"customer_name": "Bruce"})
    bound = bind(
        FN,
        {"order_id": "ORD-1", "quantity": 1, "from_number": "+10000000000", "customer_name": "Eve"},
        ctx,
    )
    assert bound.values["from_number"] == "+919876543210"
    assert bound.values["customer_name"] == "Bruce"
    assert "from_number" not in bound.ignored


def test_context_satisfies_required_parameters() -> None:
    fn = make_function(required=["from_number", "customer_name", "order_id"])
    ctx = CallContext(from_number="+91", variables={"customer_name": "Bruce"})
    bound = bind(fn, {"order_id": "ORD-1"}, ctx)
    assert bound.values["from_number"] == "+91"
    with pytest.raises(ArgumentError) as info:
        bind(fn, {"order_id": "ORD-1"}, CallContext(variables={"customer_name": "Bruce"}))
    assert info.value.missing == ["from_number"]


def test_context_values_for_undeclared_parameters_are_not_added() -> None:
    fn = make_function(required=[], order_id=PROPERTIES["order_id"])
    ctx = CallContext(agent_id="A", to_number="+1", variables={"customer_name": "Bruce"})
    bound = bind(fn, {"order_id": "ORD-1"}, ctx)
    assert bound.values == {"order_id": "ORD-1"}
    assert bound.from_context == []


def test_unset_context_values_leave_the_llm_value() -> None:
    ctx = CallContext(from_number=None, variables={"customer_name": None})
    bound = bind(
        FN,
        {"order_id": "O", "quantity": 1, "from_number": "+1", "customer_name": "Eve"},
        ctx,
    )
    assert bound.values["from_number"] == "+1"
    assert bound.values["customer_name"] == "Eve"
    assert bound.from_context == []


# ------------------------------------------------------------------------------ ignored


def test_undeclared_arguments_are_ignored_and_listed() -> None:
    bound = bind(FN, {"order_id": "O", "quantity": 1, "coupon": "FREE", "url": "http://evil"})
    assert bound.values == {"order_id": "O", "quantity": 1}
    assert sorted(bound.ignored) == ["coupon", "url"]


# ----------------------------------------------------------------------------- coercion


@pytest.mark.parametrize(("raw", "expected"), [("5", 5), (" 7 ", 7), ("-3", -3), (4.0, 4)])
def test_integer_coercion(raw: Any, expected: int) -> None:
    value = bind(FN, {"order_id": "O", "quantity": raw}).values["quantity"]
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("false", False), ("True", True), (" FALSE ", False)]
)
def test_boolean_coercion(raw: str, expected: bool) -> None:
    value = bind(FN, {"order_id": "O", "quantity": 1, "gift": raw}).values["gift"]
    assert value is expected


@pytest.mark.parametrize(("raw", "expected"), [(12345, "12345"), (2.5, "2.5"), (-7, "-7")])
def test_string_coercion(raw: Any, expected: str) -> None:
    assert bind(FN, {"order_id": raw, "quantity": 1}).values["order_id"] == expected


@pytest.mark.parametrize(("raw", "expected"), [("2.5", 2.5), ("10", 10), ("1e3", 1000.0)])
def test_number_coercion(raw: str, expected: float) -> None:
    value = bind(FN, {"order_id": "O", "quantity": 1, "price": raw}).values["price"]
    assert value == expected
    assert not isinstance(value, str)


@FAST
@given(st.integers(min_value=-(10**18), max_value=10**18))
def test_integer_text_always_coerces(n: int) -> None:
    assert bind(FN, {"order_id": "O", "quantity": str(n)}).values["quantity"] == n


@FAST
@given(st.integers(min_value=-(10**18), max_value=10**18))
def test_integer_for_string_param_becomes_its_text(n: int) -> None:
    assert bind(FN, {"order_id": n, "quantity": 1}).values["order_id"] == str(n)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("quantity", "five"),
        ("quantity", "2.5"),
        ("quantity", 2.5),
        ("gift", "yes"),
        ("price", "cheap"),
        ("order_id", True),
        ("order_id", ["ORD-1"]),
    ],
)
def test_uncoercible_values_are_invalid(name: str, value: Any) -> None:
    args = {"order_id": "O", "quantity": 1, name: value}
    with pytest.raises(ArgumentError) as info:
        bind(FN, args)
    assert info.value.code == "invalid_arguments"
    assert name in info.value.detail


def test_bool_for_integer_is_not_coerced() -> None:
    with pytest.raises(ArgumentError) as info:
        bind(FN, {"order_id": "O", "quantity": True})
    assert info.value.code == "invalid_arguments"


# ---------------------------------------------------------------------- enum and nulls


def test_invalid_enum_value_is_invalid_arguments() -> None:
    with pytest.raises(ArgumentError) as info:
        bind(FN, {"order_id": "O", "quantity": 1, "size": "XL"})
    exc = info.value
    assert exc.code == "invalid_arguments"
    assert "size" in exc.detail
    assert "XL" in exc.detail
    assert exc.missing == []


def test_valid_enum_value_accepted() -> None:
    assert bind(FN, {"order_id": "O", "quantity": 1, "size": "M"}).values["size"] == "M"


def test_null_for_optional_parameter_is_dropped() -> None:
    bound = bind(FN, {"order_id": "O", "quantity": 1, "size": None, "note": None, "gift": None})
    assert bound.values == {"order_id": "O", "quantity": 1}
    assert bound.ignored == []


def test_several_invalid_values_are_all_named() -> None:
    with pytest.raises(ArgumentError) as info:
        bind(FN, {"order_id": "O", "quantity": "many", "size": "XL", "gift": "maybe"})
    for name in ("quantity", "size", "gift"):
        assert name in info.value.detail


def test_missing_is_reported_before_invalid() -> None:
    with pytest.raises(ArgumentError) as info:
        bind(FN, {"quantity": "many"})
    assert info.value.code == "missing_arguments"
    assert info.value.missing == ["order_id"]


def test_nested_object_and_array_parameters_are_validated() -> None:
    fn = make_function(
        required=["items"],
        items={
            "type": "array",
            "description": "Items",
            "items": {
                "type": "object",
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
                "required": ["sku"],
            },
        },
    )
    ok = [{"sku": "A", "qty": 1}]
    assert bind(fn, {"items": ok}).values == {"items": ok}
    with pytest.raises(ArgumentError) as info:
        bind(fn, {"items": [{"qty": 1}]})
    assert info.value.code == "invalid_arguments"


# ----------------------------------------------------------------------- llm_parameters


def test_llm_parameters_hides_context_filled_parameters() -> None:
    ctx = CallContext(agent_id="A", from_number="+91", variables={"customer_name": "Bruce"})
    fn = make_function(required=["order_id", "from_number", "customer_name", "agent_id"])
    schema = llm_parameters(fn, ctx)
    hidden = {"agent_id", "from_number", "customer_name"}
    assert set(schema["properties"]) == set(PROPERTIES) - hidden
    assert schema["required"] == ["order_id"]
    assert schema["type"] == "object"
    # The function itself is untouched.
    assert set(fn.properties) == set(PROPERTIES)
    assert fn.required == ["order_id", "from_number", "customer_name", "agent_id"]


def test_llm_parameters_without_context_is_the_declared_schema() -> None:
    assert llm_parameters(FN) == FN.parameters
    assert llm_parameters(FN, CallContext()) == FN.parameters


def test_llm_parameters_drops_required_when_all_are_hidden() -> None:
    fn = make_function(required=["from_number"])
    schema = llm_parameters(fn, CallContext(from_number="+91"))
    assert "from_number" not in schema["properties"]
    assert schema.get("required", []) == []


def test_llm_parameters_keeps_params_whose_context_value_is_unset() -> None:
    schema = llm_parameters(FN, CallContext(from_number=None, variables={"customer_name": None}))
    assert "from_number" in schema["properties"]
    assert "customer_name" in schema["properties"]


def test_what_the_llm_sees_matches_what_bind_fills() -> None:
    ctx = CallContext(agent_id="A", variables={"customer_name": "Bruce"})
    schema = llm_parameters(FN, ctx)
    bound = bind(FN, {"order_id": "O", "quantity": 1}, ctx)
    assert set(bound.from_context).isdisjoint(schema["properties"])
    assert set(bound.from_context) | set(schema["properties"]) == set(PROPERTIES)


@pytest.mark.parametrize(
    "raw",
    [
        '{"order_id": "O", "quantity": 1, "price": NaN}',
        '{"order_id": "O", "quantity": 1, "price": Infinity}',
        '{"order_id": "O", "quantity": 1, "price": -Infinity}',
        '{"order_id": "O", "quantity": 1, "price": 1e400}',
        '{"order_id": "O", "quantity": 1, "price": "1e999"}',
    ],
    ids=["NaN", "Infinity", "-Infinity", "1e400", "text-1e999"],
)
def test_non_finite_numbers_are_invalid_arguments(raw: str) -> None:
    # NaN and Infinity are not JSON numbers (RFC 8259); a request body cannot carry them.
    with pytest.raises(ArgumentError) as info:
        bind(FN, raw)
    assert info.value.code == "invalid_arguments"


def test_union_types_in_a_schema_bind_and_validate() -> None:
    fn = load_function(
        {
            "name": "f",
            "description": "d",
            "parameters": {
                "type": "object",
                "properties": {"note": {"type": ["string", "null"], "description": "n"}},
            },
            "action": {"type": "http", "method": "POST", "url": "https://api.example.com/x"},
        }
    )
    assert bind(fn, {"note": "hi"}).values == {"note": "hi"}
    with pytest.raises(ArgumentError) as err:
        bind(fn, {"note": 5.5})
    assert err.value.code == "invalid_arguments"
