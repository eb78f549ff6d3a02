"""Tests for voicefn.templates: the rules stated in the module docstring.

Expectations are derived from the rules (and, for embedded specifiers, from Python's own ``%``),
never copied from a run of the code.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicefn.templates import (
    OMIT,
    Specifier,
    Template,
    TemplateError,
    Variable,
    iter_placeholders,
    render_text,
)

FAST = settings(max_examples=150, deadline=None)


def render(source: Any, arguments: dict[str, Any] | None = None, variables: Any = None) -> Any:
    return Template(source).render(arguments or {}, variables or {})


# ------------------------------------------------------------------ strings arrive byte-exact

NASTY_STRINGS = [
    'He said "hi"',
    "line one\nline two\r\nline three",
    "C:\\path\\to\\file \\n not a newline",
    "50% off",
    "100%",
    "%(x)s",
    "%(order_id)i and %(y)f",
    "%s %d %% %(",
    "{agent_id}",
    "{customer_name} {not a var}",
    "nul\x00byte",
    "emoji 🎉👍🏽 family 👨‍👩‍👧",
    "देवनागरी में नमस्ते",
    "مرحبا بالعالم",
    "你好\uff0c世界 こんにちは 안녕하세요",
    "tab\there",
    "",
    " ",
    "\u2028\u2029",
    "}{",
    '{"a": 1}',
]


@pytest.mark.parametrize("value", NASTY_STRINGS)
def test_string_argument_arrives_byte_exact_as_whole_value(value: str) -> None:
    out = render({"v": "%(v)s"}, {"v": value})
    assert out == {"v": value}
    assert out["v"].encode("utf-8") == value.encode("utf-8")


@pytest.mark.parametrize("value", NASTY_STRINGS)
def test_string_argument_arrives_byte_exact_inside_longer_string(value: str) -> None:
    out = render({"v": "before <%(v)s> after"}, {"v": value})
    assert out == {"v": f"before <{value}> after"}


@pytest.mark.parametrize("value", NASTY_STRINGS)
def test_argument_text_is_never_expanded_again(value: str) -> None:
    # A value that looks like a specifier or a variable stays literal, even when the names exist.
    args = {"v": value, "x": "EXPANDED", "order_id": 99, "y": 1.5}
    variables = {"agent_id": "EXPANDED", "customer_name": "EXPANDED"}
    assert render("%(v)s", args, variables) == value
    assert render("[%(v)s]", args, variables) == f"[{value}]"


@FAST
@given(st.text())
def test_any_text_whole_value_round_trips_through_json(value: str) -> None:
    out = render({"k": "%(s)s", "n": {"deep": ["%(s)s"]}}, {"s": value})
    assert out == {"k": value, "n": {"deep": [value]}}
    for ensure_ascii in (True, False):
        assert json.loads(json.dumps(out, ensure_ascii=ensure_ascii)) == out
    assert json.loads(json.dumps(out, ensure_ascii=False).encode("utf-8")) == out


@FAST
@given(st.text(), st.text(alphabet=st.characters(exclude_characters="%{")))
def test_any_text_embedded_round_trips_through_json(value: str, around: str) -> None:
    out = render({"k": around + "%(s)s" + around}, {"s": value})
    assert out == {"k": around + value + around}
    assert json.loads(json.dumps(out)) == out
    assert json.loads(json.dumps(out, ensure_ascii=False)) == out


# --------------------------------------------------------------------- whole-value typing


def test_whole_integer_specifier_gives_json_integer() -> None:
    out = render({"n": "%(n)i", "d": "%(n)d"}, {"n": 42})
    assert out == {"n": 42, "d": 42}
    assert type(out["n"]) is int
    assert json.dumps(out, sort_keys=True) == '{"d": 42, "n": 42}'


def test_whole_float_specifier_gives_json_number() -> None:
    out = render({"x": "%(x)f"}, {"x": 29.99})
    assert out == {"x": 29.99}
    assert type(out["x"]) is float
    # An integer for %f is a number too (JSON number, not text).
    out = render("%(x)f", {"x": 3})
    assert out == 3.0
    assert isinstance(out, float)


def test_whole_string_specifier_gives_the_string() -> None:
    assert render("%(s)s", {"s": "ORD-12345"}) == "ORD-12345"


@pytest.mark.parametrize("value", [True, False])
def test_bool_via_s_stays_bool(value: bool) -> None:
    out = render({"b": "%(b)s"}, {"b": value})
    assert out == {"b": value}
    assert type(out["b"]) is bool
    assert json.dumps(out) == f'{{"b": {"true" if value else "false"}}}'


@pytest.mark.parametrize(
    "value",
    [[1, "two", None, {"three": 3}], {"a": [1, 2], "b": {"c": "d"}}, [], {}],
)
def test_list_and_dict_via_s_stay_json(value: Any) -> None:
    out = render({"v": "%(v)s"}, {"v": value})
    assert out == {"v": value}
    assert type(out["v"]) is type(value)


@FAST
@given(st.integers() | st.floats(allow_nan=False, allow_infinity=False))
def test_number_via_s_whole_value_is_its_python_text(value: int | float) -> None:
    # Documented: "a number becomes its text, as %s does in Python".
    assert render("%(n)s", {"n": value}) == "%s" % (value,)  # noqa: UP031


def test_formatted_whole_value_is_text() -> None:
    assert render("%(p).2f", {"p": 3.14159}) == "3.14"
    assert render("%(n)05d", {"n": 42}) == "00042"
    assert render("%(s)10s", {"s": "hi"}) == "        hi"


@pytest.mark.parametrize("template", ["%(n)i", "%(n)d", "id-%(n)i", "%(n)i items"])
def test_non_integral_float_for_integer_raises(template: str) -> None:
    with pytest.raises(TemplateError):
        render({"k": template}, {"n": 3.5})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.5, 1e-9])
def test_other_non_integral_floats_for_integer_raise(value: float) -> None:
    with pytest.raises(TemplateError):
        render("%(n)i", {"n": value})
    with pytest.raises(TemplateError):
        render("x%(n)ix", {"n": value})


def test_integral_float_for_integer_is_accepted() -> None:
    out = render("%(n)i", {"n": 3.0})
    assert out == 3
    assert type(out) is int
    assert render("n=%(n)i", {"n": 3.0}) == "n=3"


@pytest.mark.parametrize("template", ["%(v)i", "%(v)d", "%(v)f", "a%(v)ib", "a%(v)fb"])
@pytest.mark.parametrize("value", [True, False])
def test_bool_for_numeric_specifier_raises(template: str, value: bool) -> None:
    with pytest.raises(TemplateError):
        render(template, {"v": value})


def test_numeric_string_for_integer_gives_integer() -> None:
    out = render("%(n)i", {"n": "5"})
    assert out == 5
    assert type(out) is int
    assert render("n=%(n)i", {"n": "5"}) == "n=5"


@pytest.mark.parametrize("value", ["five", "5.5", "", [5], {"n": 5}, None])
def test_non_numeric_for_integer_raises(value: Any) -> None:
    with pytest.raises(TemplateError):
        render("%(n)i", {"n": value})


@pytest.mark.parametrize("value", ["abc", "", [1.5], {"x": 1}])
def test_non_numeric_for_float_raises(value: Any) -> None:
    with pytest.raises(TemplateError):
        render("%(x)f", {"x": value})


def test_template_error_is_a_value_error() -> None:
    assert issubclass(TemplateError, ValueError)


# ------------------------------------------------------ embedded specifiers match Python's %

_PLAIN = st.text(alphabet=st.characters(exclude_characters="%{"), max_size=12)
# Non-empty text around a specifier, so it is embedded rather than the whole value.
_PRE = _PLAIN.map(lambda s: "[" + s)
_POST = _PLAIN.map(lambda s: s + "]")
_NAME = st.text(alphabet=st.characters(exclude_characters="()%"), min_size=1, max_size=8)
_FLAGS = st.text(alphabet="-#0 +", max_size=3)
_WIDTH = st.sampled_from(["", "1", "5", "12"])
_PREC = st.sampled_from(["", ".0", ".2", ".6"])


def _spec(name: str, flags: str, width: str, prec: str, conv: str) -> str:
    return f"%({name}){flags}{width}{prec}{conv}"


@FAST
@given(_PRE, _POST, _NAME, _FLAGS, _WIDTH, st.sampled_from("id"), st.integers())
def test_embedded_integer_formats_like_python(
    pre: str, post: str, name: str, flags: str, width: str, conv: str, value: int
) -> None:
    spec = _spec(name, flags, width, "", conv)
    assert render(pre + spec + post, {name: value}) == (pre + spec + post) % {name: value}


@FAST
@given(
    _PRE,
    _POST,
    _NAME,
    _FLAGS,
    _WIDTH,
    _PREC,
    st.sampled_from("fFeEgG"),
    st.floats(allow_nan=False, allow_infinity=False, width=64) | st.integers(-(10**6), 10**6),
)
def test_embedded_float_formats_like_python(
    pre: str, post: str, name: str, flags: str, width: str, prec: str, conv: str, value: float
) -> None:
    spec = _spec(name, flags, width, prec, conv)
    template = pre + spec + post
    assert render(template, {name: value}) == template % {name: float(value)}


@FAST
@given(_PRE, _POST, _NAME, st.sampled_from(["", "-", "-5", "3", ".2"]), st.text())
def test_embedded_string_formats_like_python(
    pre: str, post: str, name: str, fmt: str, value: str
) -> None:
    spec = f"%({name}){fmt}s"
    template = pre + spec + post
    assert render(template, {name: value}) == template % {name: value}


@FAST
@given(_PLAIN, st.text(), st.integers(), st.floats(allow_nan=False, allow_infinity=False))
def test_several_embedded_specifiers_format_like_python(sep: str, s: str, n: int, x: float) -> None:
    template = f"%(s)s{sep}%(n)i{sep}%(x)f{sep}%(n)d"
    args = {"s": s, "n": n, "x": x}
    assert render(template, args) == template % args


@pytest.mark.parametrize(("value", "text"), [(True, "true"), (False, "false")])
def test_bool_inside_string_is_json_text(value: bool, text: str) -> None:
    assert render("gift=%(b)s;", {"b": value}) == f"gift={text};"


def test_list_and_dict_inside_string_are_compact_json() -> None:
    value = {"a": [1, "é", None], "b": True}
    out = render("data=%(v)s", {"v": value})
    assert out.startswith("data=")
    assert json.loads(out[len("data=") :]) == value
    assert " " not in out  # compact separators
    assert "é" in out  # not \u-escaped


def test_whole_and_embedded_bool_in_one_object() -> None:
    out = render({"flag": "%(b)s", "note": "gift: %(b)s", "n": "%(b)s!"}, {"b": True})
    assert out == {"flag": True, "note": "gift: true", "n": "true!"}
    assert json.loads(json.dumps(out)) == {"flag": True, "note": "gift: true", "n": "true!"}


# -------------------------------------------------------------------- missing optional params


def test_missing_param_key_is_omitted_from_object() -> None:
    out = render(
        {"customer_id": "%(customer_id)s", "rating": "%(rating)i", "comment": "%(comment)s"},
        {"customer_id": "134532", "rating": 5},
    )
    assert out == {"customer_id": "134532", "rating": 5}
    assert "comment" not in out


def test_missing_param_element_dropped_from_list() -> None:
    out = render(["%(a)s", "%(b)s", "static", "%(c)i"], {"a": "A", "c": 3})
    assert out == ["A", "static", 3]


def test_embedded_missing_param_omits_the_key() -> None:
    out = render(
        {"greeting": "Hello %(name)s, order %(order)s", "order": "%(order)s"}, {"order": "O-1"}
    )
    assert out == {"order": "O-1"}


def test_missing_params_in_nested_objects() -> None:
    template = {
        "customer": {"name": "%(name)s", "phone": "%(phone)s", "tags": ["%(tag)s", "vip"]},
        "meta": {"source": "voice", "note": "note: %(note)s"},
        "items": [{"sku": "%(sku)s", "qty": "%(qty)i"}],
    }
    out = render(template, {"name": "Priya", "qty": 2})
    assert out == {
        "customer": {"name": "Priya", "tags": ["vip"]},
        "meta": {"source": "voice"},
        "items": [{"qty": 2}],
    }


def test_whole_template_missing_param_is_omit() -> None:
    assert render("%(x)s", {}) is OMIT
    assert render("pre %(x)s post", {}) is OMIT


def test_missing_param_never_becomes_none_or_empty() -> None:
    out = render({"a": "%(a)s", "b": "%(b)i", "c": "x%(c)sx", "d": ["%(d)f"]}, {})
    assert out == {"d": []}
    assert None not in out.values()
    assert "" not in out.values()


def test_non_string_template_values_pass_through() -> None:
    template = {"n": 1, "f": 2.5, "t": True, "z": None, "l": [1, None, False]}
    assert render(template, {}) == template


# ------------------------------------------------------------------- literal % is left alone


@pytest.mark.parametrize(
    "text",
    [
        "50% off",
        "100%",
        "%d",
        "%%",
        "%(",
        "%s",
        "%i%",
        "%(unclosed",
        "100%d",
        "rate: 5 %",
        "(%)",
        "%)",
        "%\n(",
    ],
)
def test_literal_percent_is_left_alone(text: str) -> None:
    assert render(text, {"name": "X", "unclosed": "X"}) == text
    assert render({"k": text, "l": [text]}, {}) == {"k": text, "l": [text]}


@pytest.mark.parametrize("text", ["50% off", "100%", "%d", "%%", "%("])
def test_literal_percent_next_to_a_specifier(text: str) -> None:
    assert render(text + " %(n)i " + text, {"n": 7}) == f"{text} 7 {text}"


# --------------------------------------------------------------------- {variable} placeholders


@pytest.mark.parametrize("value", ["+19876543210", 42, 2.5, True, None, ["a", 1], {"k": "v"}])
def test_whole_value_variable_takes_its_json_value(value: Any) -> None:
    out = render({"v": "{customer}"}, {}, {"customer": value})
    assert out == {"v": value}
    assert type(out["v"]) is type(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("Bruce", "Bruce"),
        (42, "42"),
        (2.5, "2.5"),
        (True, "true"),
        (False, "false"),
        ({"a": 1}, '{"a":1}'),
    ],
)
def test_variable_inside_string_is_its_text(value: Any, text: str) -> None:
    assert render("Hi {who}!", {}, {"who": value}) == f"Hi {text}!"


def test_system_variables_and_specifiers_together() -> None:
    out = render(
        {"agent": "{agent_id}", "url": "calls/{call_sid}/orders/%(order_id)s"},
        {"order_id": "ORD-1"},
        {"agent_id": "7d86b904", "call_sid": "CA123"},
    )
    assert out == {"agent": "7d86b904", "url": "calls/CA123/orders/ORD-1"}


@pytest.mark.parametrize(
    "template", ["{customer_name}", "Hi {customer_name}", ["{x}"], {"a": "{x}"}]
)
def test_unknown_variable_raises(template: Any) -> None:
    with pytest.raises(TemplateError):
        render(template, {"customer_name": "LLM value is not a variable", "x": 1}, {})


def test_variable_value_is_not_expanded_again() -> None:
    out = render("{a}", {"x": "X"}, {"a": "{b} %(x)s", "b": "B"})
    assert out == "{b} %(x)s"


@pytest.mark.parametrize(
    "text",
    [
        "{not an identifier}",
        "{}",
        '{"a": 1}',
        "{1abc}",
        "{ spaced }",
        "{a-b}",
        "{",
        "}",
        "{{",
        "{a.b}",
    ],
)
def test_non_identifier_braces_left_alone(text: str) -> None:
    assert render(text, {}, {}) == text
    assert render({"k": text}, {}, {}) == {"k": text}
    assert render_text(text, {}) == text


def test_json_looking_text_with_a_specifier_is_only_substituted_at_the_specifier() -> None:
    assert render('{"a": %(n)i}', {"n": 1}, {}) == '{"a": 1}'


def test_render_text_fills_known_and_keeps_unknown() -> None:
    text = "You are Sam speaking to {customer_name}. Agent {agent_id}, call {call_sid}."
    out = render_text(text, {"customer_name": "Bruce", "agent_id": 7})
    assert out == "You are Sam speaking to Bruce. Agent 7, call {call_sid}."


def test_render_text_leaves_specifiers_and_percent_alone() -> None:
    text = "50% off for %(name)s, {who}"
    assert render_text(text, {"name": "X", "who": True}) == "50% off for %(name)s, true"


@FAST
@given(st.text(alphabet=st.characters(exclude_characters="{")))
def test_render_text_without_braces_is_identity(text: str) -> None:
    assert render_text(text, {"a": 1}) == text


# --------------------------------------------------------------------------- iter_placeholders


def test_iter_placeholders_yields_paths_for_nested_structures() -> None:
    template = {
        "a": {"b": ["literal", "%(p)s", {"c": "x{agent_id}y%(q)i"}]},
        "d": "50% off",
        "e": 5,
        "%(not_scanned)s": "k",
    }
    found = [(path, type(ph).__name__, ph.name) for path, ph in iter_placeholders(template)]
    assert found == [
        (("a", "b", 1), "Specifier", "p"),
        (("a", "b", 2, "c"), "Variable", "agent_id"),
        (("a", "b", 2, "c"), "Specifier", "q"),
    ]


def test_iter_placeholders_specifier_details() -> None:
    [(path, spec)] = list(iter_placeholders(["x", ["%(price).2f"]]))
    assert path == (1, 0)
    assert isinstance(spec, Specifier)
    assert (spec.name, spec.conv, spec.text, spec.formatted) == ("price", "f", "%(price).2f", True)
    assert spec.json_type == "number"
    [(_, plain)] = list(iter_placeholders("%(n)i"))
    assert isinstance(plain, Specifier)
    assert plain.formatted is False
    assert plain.json_type == "integer"
    [(path, var)] = list(iter_placeholders({"k": "{from_number}"}))
    assert path == ("k",)
    assert var == Variable("from_number", "{from_number}")


def test_iter_placeholders_of_a_plain_value_is_empty() -> None:
    assert list(iter_placeholders({"a": [1, 2.5, None, True, "50% {not var}"]})) == []


# --------------------------------------------------------------------- compile once, render many


def test_template_is_reusable_and_does_not_share_output() -> None:
    t = Template({"a": "%(a)s", "l": ["%(a)s"]})
    first = t.render({"a": "one"}, {})
    second = t.render({"a": "two"}, {})
    assert first == {"a": "one", "l": ["one"]}
    assert second == {"a": "two", "l": ["two"]}
    first["l"].append("mutated")
    assert t.render({"a": "three"}, {}) == {"a": "three", "l": ["three"]}


def test_render_does_not_mutate_the_source() -> None:
    source = {"a": "%(a)s", "b": ["%(b)s", "%(c)s"], "c": {"d": "%(d)s"}}
    snapshot = json.dumps(source)
    Template(source).render({"a": 1}, {})
    assert json.dumps(source) == snapshot


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, "inf", "NaN"])
def test_non_finite_numbers_are_refused_for_number_specifiers(value: Any) -> None:
    # JSON has no inf/nan, and "x=inf" means nothing to an API: refuse rather than send it.
    with pytest.raises(TemplateError, match="finite"):
        render("x=%(x)f", {"x": value})
    with pytest.raises(TemplateError, match="finite"):
        render("%(x)f", {"x": value})
