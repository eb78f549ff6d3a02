"""Dialects: lossless round trips, honest ``lost`` lists, exact LLM tool shapes, detection."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from voicefn import CallContext, Function
from voicefn.context import SYSTEM_VARIABLES
from voicefn.dialects import DIALECTS, LOADABLE, detect, dump, load_function, validate
from voicefn.spec import HTTP_METHODS, MAX_TIMEOUT_MS

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LLM_DIALECTS = ("openai", "openai-responses", "anthropic", "gemini")
PLATFORMS = ("bolna", "call2me", "callkaro")

# ---------------------------------------------------------------------------- strategies
#
# Secrets and templates are written with characters that names and descriptions cannot contain
# ('~', ':', digits, '%'), so "the LLM dump never contains X" cannot hold by coincidence.

FUNCTION_NAMES = st.from_regex(r"[a-zA-Z0-9_-]{1,64}", fullmatch=True)
PARAM_NAMES = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True).filter(
    lambda n: n not in SYSTEM_VARIABLES
)
WORDS = st.text(
    alphabet=st.characters(categories=["L"]) | st.just(" "), min_size=1, max_size=30
).filter(lambda s: s.strip() != "")
SPEECH = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != "")
LANGS = st.sampled_from(["en", "hi", "es-MX", "ar", "zh", "en-IN"])
HOSTS = st.from_regex(r"api-[a-z]{1,8}\.example\.(com|in)", fullmatch=True)
SEGMENTS = st.lists(st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True), max_size=3)
TOKENS = st.from_regex(r"Bearer tok~[0-9]{6,12}", fullmatch=True)
HEADER_NAMES = st.from_regex(r"X~H[0-9]{1,4}", fullmatch=True)
HEADER_VALUES = st.from_regex(r"hv~[0-9]{1,6}[a-z]{0,4}", fullmatch=True)
SPEC = {"string": "s", "integer": "i", "number": "f", "boolean": "s", "array": "s", "object": "s"}
ALL_TYPES = tuple(SPEC)


@st.composite
def parameter_schemas(
    draw: st.DrawFn,
    types: tuple[str, ...] = ALL_TYPES,
    extras: bool = True,
    describe_always: bool = False,
    required_in_order: bool = False,
) -> dict[str, Any]:
    names = draw(st.lists(PARAM_NAMES, max_size=5, unique=True))
    props: dict[str, Any] = {}
    for name in names:
        ptype = draw(st.sampled_from(types))
        prop: dict[str, Any] = {"type": ptype}
        if describe_always or draw(st.booleans()):
            prop["description"] = draw(WORDS)
        if extras:
            if ptype == "array" and draw(st.booleans()):
                prop["items"] = {"type": draw(st.sampled_from(["string", "integer"]))}
            if ptype == "string" and draw(st.integers(0, 4)) == 0:
                prop["type"] = ["string", "null"]
            if ptype == "string" and draw(st.integers(0, 4)) == 0:
                prop["enum"] = draw(st.lists(WORDS, min_size=1, max_size=3, unique=True))
        props[name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": props}
    required = [n for n in names if draw(st.booleans())]
    if required_in_order:
        schema["required"] = required
    else:
        required = draw(st.permutations(required))
        if required or draw(st.booleans()):
            schema["required"] = list(required)
    return schema


def _spec_for(prop: dict[str, Any]) -> str:
    ptype = prop["type"]
    ptype = ptype[0] if isinstance(ptype, list) else ptype
    return SPEC[ptype]


@st.composite
def param_templates(draw: st.DrawFn, props: dict[str, Any]) -> dict[str, Any]:
    """A request template that references every parameter with the right specifier."""
    template: dict[str, Any] = {}
    nested: dict[str, Any] = {}
    for name, prop in props.items():
        ph = f"%({name}){_spec_for(prop)}"
        style = draw(st.integers(0, 3))
        if style == 1 and _spec_for(prop) == "s" and prop["type"] == "string":
            template[name] = f"pre-{ph}-post"
        elif style == 2:
            nested[name] = ph
        else:
            template[name] = ph
    if nested:
        template["nested"] = nested
    if draw(st.booleans()):
        template["static"] = draw(st.sampled_from(["voice", 1, True, None, [1, "a"]]))
    if draw(st.booleans()):
        template["agent"] = "{agent_id}"
    return template


@st.composite
def functions(
    draw: st.DrawFn,
    *,
    phases: tuple[str, ...] = ("pre_call", "in_call", "post_call"),
    types: tuple[str, ...] = ALL_TYPES,
    extras: bool = True,
    required_in_order: bool = False,
    filler_dicts: bool = True,
    param: str = "any",  # "any", "template", "none"
    token: bool = True,
    headers: bool = True,
    timeout: bool = True,
    webhook: bool = True,
    methods: tuple[str, ...] = HTTP_METHODS,
    allow_repeat: bool = True,
) -> Function:
    phase = draw(st.sampled_from(phases))
    description = draw(WORDS) if phase == "in_call" else draw(st.just("") | WORDS)
    schema = draw(
        parameter_schemas(
            types=types,
            extras=extras,
            describe_always=not extras,
            required_in_order=required_in_order,
        )
    )
    props = schema["properties"]
    fillers: list[st.SearchStrategy[Any]] = [st.none(), SPEECH]
    if filler_dicts:
        fillers.append(st.dictionaries(LANGS, SPEECH, max_size=3))
    filler = draw(st.one_of(fillers))

    url = "https://" + draw(HOSTS) + "".join("/" + s for s in draw(SEGMENTS))
    strings = [n for n, p in props.items() if p["type"] == "string"]
    if strings and draw(st.booleans()):
        url += f"/%({draw(st.sampled_from(strings))})s"
    if param == "none" or (param == "any" and draw(st.booleans())):
        template = None
    else:
        template = draw(param_templates(props))
    action: dict[str, Any] = {
        "method": draw(st.sampled_from(methods)),
        "url": url,
        "param": template,
    }
    if token and draw(st.booleans()):
        action["api_token"] = draw(TOKENS)
    if headers:
        action["headers"] = draw(st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=3))
    if timeout and draw(st.booleans()):
        action["timeout_ms"] = draw(st.integers(1, MAX_TIMEOUT_MS))
    if webhook and draw(st.booleans()):
        hook: dict[str, Any] = {"channel": "voice"}
        if props and draw(st.booleans()):
            name = draw(st.sampled_from(sorted(props)))
            hook["value"] = f"%({name}){_spec_for(props[name])}"
        action["pre_call_webhook_param"] = hook
        if draw(st.booleans()):
            action["pre_call_webhook_url"] = "https://hooks.example.com/" + draw(
                st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True)
            )
    doc: dict[str, Any] = {
        "name": draw(FUNCTION_NAMES),
        "description": description,
        "phase": phase,
        "parameters": schema,
        "filler": filler,
        "action": action,
    }
    if allow_repeat:
        doc["allow_repeat"] = draw(st.sampled_from([None, True, False]))
    function = Function.model_validate(doc)
    return function


#: What each platform dialect carries (see each dialect's from_function and its seed).
CARRIED = {
    "bolna": dict(
        phases=("in_call",),
        filler_dicts=False,
        param="template",
        timeout=False,
        allow_repeat=False,
    ),
    "call2me": dict(
        phases=("in_call",),
        filler_dicts=False,
        param="none",
        token=False,
        headers=False,
        webhook=False,
        methods=("GET", "POST", "PATCH", "DELETE"),
        allow_repeat=False,
    ),
    "callkaro": dict(
        phases=("in_call",),
        types=("string", "number", "integer", "boolean"),
        extras=False,
        required_in_order=True,
        filler_dicts=False,
        param="none",
        timeout=False,
        webhook=False,
        allow_repeat=False,
    ),
}


def _no_filler(f: Function) -> Function:
    return f.model_copy(update={"filler": None})


# ------------------------------------------------------------------------ round trips


@FAST
@given(functions())
def test_generated_functions_are_valid(f: Function) -> None:
    report = validate(f.to_dict(), "voicefn")
    assert report.errors == [], [str(p) for p in report.errors]


@FAST
@given(functions())
def test_voicefn_round_trip_is_lossless(f: Function) -> None:
    doc, lost = dump(f, "voicefn")
    assert lost == []
    assert load_function(doc, "voicefn") == f
    # ... and through JSON text, as it is written to a file.
    assert load_function(json.loads(json.dumps(doc)), "voicefn") == f
    assert detect(doc) == "voicefn"


@FAST
@given(functions(**CARRIED["bolna"]))
def test_bolna_round_trip(f: Function) -> None:
    doc, lost = dump(f, "bolna")
    assert lost == []
    assert doc["key"] == "custom_task"
    assert detect(doc) == "bolna"
    report = validate(json.loads(json.dumps(doc)), "bolna")
    assert report.errors == [], [str(p) for p in report.errors]
    assert report.function == f


@FAST
@given(functions(**CARRIED["call2me"]))
def test_call2me_round_trip(f: Function) -> None:
    doc, lost = dump(f, "call2me")
    assert lost == []
    assert detect(doc) == "call2me"
    report = validate(json.loads(json.dumps(doc)), "call2me")
    assert report.errors == [], [str(p) for p in report.errors]
    assert report.function == f


@FAST
@given(functions(**CARRIED["callkaro"]).map(_no_filler))
def test_callkaro_round_trip(f: Function) -> None:
    doc, lost = dump(f, "callkaro")
    assert lost == []
    assert detect(doc) == "callkaro"
    report = validate(json.loads(json.dumps(doc)), "callkaro")
    assert report.errors == [], [str(p) for p in report.errors]
    assert report.function == f


def _comparable(f: Function) -> dict[str, Any]:
    """The function with representation-only differences removed: the order of ``required``,
    an absent vs an empty ``required``, and a one-language filler vs that line as a string."""
    d = f.to_dict()
    params = dict(d["parameters"])
    params["required"] = sorted(params.get("required", []))
    d["parameters"] = params
    filler = d.get("filler")
    if isinstance(filler, dict) and len(filler) <= 1:
        d["filler"] = next(iter(filler.values()), None)
    return d


def _with_action(f: Function, **changes: Any) -> Function:
    # Validated, so api_token becomes a SecretStr as it would from any loader.
    action = type(f.http).model_validate({**f.http.model_dump(), **changes})
    return f.model_copy(update={"action": action})


def _with_property(f: Function, name: str, schema: dict[str, Any]) -> Function:
    params = json.loads(json.dumps(f.parameters))
    params.setdefault("properties", {})[name] = schema
    return f.model_copy(update={"parameters": params})


#: One feature each; applied to a function the dialect fully carries.
MUTATIONS: dict[str, Any] = {
    "phase pre_call": lambda f: f.model_copy(update={"phase": "pre_call"}),
    "phase post_call": lambda f: f.model_copy(update={"phase": "post_call"}),
    "filler in two languages": lambda f: f.model_copy(
        update={"filler": {"en": "One moment", "hi": "एक क्षण"}}
    ),
    "filler": lambda f: f.model_copy(update={"filler": "One moment"}),
    "allow_repeat true": lambda f: f.model_copy(update={"allow_repeat": True}),
    "allow_repeat false": lambda f: f.model_copy(update={"allow_repeat": False}),
    "timeout_ms": lambda f: _with_action(f, timeout_ms=4321),
    "api_token": lambda f: _with_action(f, api_token="Bearer tok~1234567"),
    "headers": lambda f: _with_action(f, headers={"X~H1": "hv~1"}),
    "param template": lambda f: _with_action(f, param={"static": "voice"}),
    "pre_call_webhook_param": lambda f: _with_action(f, pre_call_webhook_param={"c": "voice"}),
    "pre_call_webhook_url": lambda f: _with_action(
        f, pre_call_webhook_url="https://hooks.example.com/x"
    ),
    "method PUT": lambda f: _with_action(f, method="PUT"),
    "array parameter": lambda f: _with_property(
        f, "zz_tags", {"type": "array", "items": {"type": "string"}, "description": "Tags"}
    ),
    "object parameter": lambda f: _with_property(
        f, "zz_obj", {"type": "object", "description": "Obj"}
    ),
    "nullable parameter": lambda f: _with_property(
        f, "zz_null", {"type": ["string", "null"], "description": "Maybe"}
    ),
    "enum": lambda f: _with_property(
        f, "zz_size", {"type": "string", "enum": ["S", "M"], "description": "Size"}
    ),
    "minimum": lambda f: _with_property(
        f, "zz_qty", {"type": "integer", "minimum": 1, "description": "Count"}
    ),
    "additionalProperties": lambda f: f.model_copy(
        update={"parameters": {**f.parameters, "additionalProperties": False}}
    ),
}


@st.composite
def platform_cases(draw: st.DrawFn) -> tuple[str, Function, list[str]]:
    dialect = draw(st.sampled_from(PLATFORMS))
    f = draw(functions(**CARRIED[dialect]))
    if dialect == "callkaro":
        f = _no_filler(f)
    applied = draw(st.lists(st.sampled_from(sorted(MUTATIONS)), max_size=2, unique=True))
    for name in applied:
        f = MUTATIONS[name](f)
    return dialect, Function.model_validate(f.to_dict()), applied


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(platform_cases())
def test_nothing_is_dropped_without_being_reported(case: tuple[str, Function, list[str]]) -> None:
    """When ``lost`` is empty, the dialect carried everything."""
    dialect, f, applied = case
    # Bolna always writes an explicit template; that is how it expresses "send the arguments".
    assume(not (dialect == "bolna" and f.http.param is None))
    doc, lost = dump(f, dialect)
    if lost:
        return
    again = validate(json.loads(json.dumps(doc)), dialect).function
    assert again is not None
    assert _comparable(again) == _comparable(f), f"{dialect} silently dropped one of {applied}"


# ---------------------------------------------------------------- lost: named, not silent


def base_function(**changes: Any) -> Function:
    doc: dict[str, Any] = {
        "name": "check_order_status",
        "description": "Use when the caller asks where their order is",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "The order ID"}},
            "required": ["order_id"],
        },
        "action": {"method": "POST", "url": "https://api.example.com/orders"},
    }
    action_changes = changes.pop("action", {})
    doc.update(changes)
    doc["action"].update(action_changes)
    return Function.model_validate(doc)


def mentions(lost: list[str], *words: str) -> bool:
    text = " ".join(lost).lower()
    return all(w.lower() in text for w in words)


def test_plain_function_loses_nothing_in_any_platform() -> None:
    f = base_function()
    for dialect in ("voicefn", "call2me", "callkaro"):
        assert dump(f, dialect)[1] == [], dialect
    assert dump(base_function(action={"param": {"order_id": "%(order_id)s"}}), "bolna")[1] == []


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"action": {"api_token": "Bearer sk_live_1"}}, ["api_token"]),
        ({"action": {"headers": {"X-Source": "voice"}}}, ["headers"]),
        ({"action": {"param": {"id": "%(order_id)s"}}}, ["param"]),
        ({"action": {"pre_call_webhook_param": {"a": "b"}}}, ["webhook"]),
        ({"action": {"pre_call_webhook_url": "https://hooks.example.com/x"}}, ["webhook"]),
        ({"action": {"method": "PUT"}}, ["PUT"]),
        ({"phase": "post_call"}, ["phase"]),
        ({"filler": {"en": "One moment", "hi": "एक क्षण"}}, ["language"]),
        ({"allow_repeat": True}, ["allow_repeat"]),
    ],
    ids=[
        "api_token",
        "headers",
        "param",
        "webhook_param",
        "webhook_url",
        "put",
        "phase",
        "languages",
        "allow_repeat",
    ],
)
def test_call2me_names_what_it_cannot_carry(changes: dict[str, Any], words: list[str]) -> None:
    _, lost = dump(base_function(**changes), "call2me")
    assert lost
    assert mentions(lost, *words), lost


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"phase": "pre_call"}, ["phase"]),
        ({"filler": {"en": "One moment", "hi": "एक क्षण"}}, ["language"]),
        ({"action": {"timeout_ms": 4000}}, ["timeout_ms"]),
        ({"allow_repeat": False}, ["allow_repeat"]),
    ],
    ids=["phase", "languages", "timeout_ms", "allow_repeat"],
)
def test_bolna_names_what_it_cannot_carry(changes: dict[str, Any], words: list[str]) -> None:
    f = base_function(**changes)
    f = f.model_copy(
        update={"action": f.http.model_copy(update={"param": {"order_id": "%(order_id)s"}})}
    )
    _, lost = dump(f, "bolna")
    assert lost
    assert mentions(lost, *words), lost


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"action": {"param": {"id": "%(order_id)s"}}}, ["param"]),
        ({"action": {"pre_call_webhook_param": {"a": "b"}}}, ["webhook"]),
        ({"action": {"pre_call_webhook_url": "https://hooks.example.com/x"}}, ["webhook"]),
        ({"filler": "One moment"}, ["filler"]),
        ({"action": {"timeout_ms": 4000}}, ["timeout_ms"]),
        ({"phase": "post_call"}, ["phase"]),
        ({"phase": "pre_call"}, ["phase"]),
        ({"allow_repeat": True}, ["allow_repeat"]),
        (
            {
                "parameters": {
                    "type": "object",
                    "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
                }
            },
            ["tags", "array"],
        ),
        (
            {
                "parameters": {
                    "type": "object",
                    "properties": {
                        "size": {"type": "string", "enum": ["S", "M"], "description": "Size"}
                    },
                }
            },
            ["size"],
        ),
        (
            {
                "parameters": {
                    "type": "object",
                    "properties": {
                        "qty": {"type": "integer", "minimum": 1, "description": "How many"}
                    },
                }
            },
            ["qty"],
        ),
    ],
    ids=[
        "param",
        "webhook_param",
        "webhook_url",
        "filler",
        "timeout_ms",
        "post_call",
        "pre_call",
        "allow_repeat",
        "array",
        "enum",
        "minimum",
    ],
)
def test_callkaro_names_what_it_cannot_carry(changes: dict[str, Any], words: list[str]) -> None:
    _, lost = dump(base_function(**changes), "callkaro")
    assert lost
    assert mentions(lost, *words), lost


def test_call2me_lost_api_token_still_dumps_the_rest() -> None:
    f = base_function(action={"api_token": "Bearer sk_live_1", "timeout_ms": 4000})
    doc, lost = dump(f, "call2me")
    assert mentions(lost, "api_token")
    assert "sk_live_1" not in json.dumps(doc)
    assert doc["url"] == "https://api.example.com/orders"
    assert doc["timeout_ms"] == 4000


def test_bolna_dump_of_a_function_without_template_sends_every_argument() -> None:
    f = Function.model_validate(
        {
            "name": "f",
            "description": "d",
            "parameters": {
                "type": "object",
                "properties": {
                    "s": {"type": "string"},
                    "n": {"type": "integer"},
                    "x": {"type": "number"},
                    "b": {"type": "boolean"},
                },
            },
            "action": {"method": "POST", "url": "https://api.example.com/x"},
        }
    )
    doc, _ = dump(f, "bolna")
    assert doc["value"]["param"] == {"s": "%(s)s", "n": "%(n)i", "x": "%(x)f", "b": "%(b)s"}


def test_unknown_dialect_raises() -> None:
    with pytest.raises(ValueError, match="unknown dialect"):
        dump(base_function(), "synthflow")


# --------------------------------------------------------------------------- LLM dialects

RICH = Function.model_validate(
    {
        "name": "book_appointment",
        "description": "Use when the caller wants to book an appointment",
        "parameters": {
            "type": "object",
            "properties": {
                "patient_name": {"type": "string", "description": "Full name"},
                "slot": {"type": ["string", "null"], "description": "Preferred slot"},
                "guests": {"type": "integer", "minimum": 0},
                "tags": {"type": "array", "items": {"type": "string"}},
                "prefs": {
                    "type": "object",
                    "properties": {"quiet": {"type": "boolean"}},
                    "additionalProperties": False,
                },
                "from_number": {"type": "string", "description": "Caller phone"},
            },
            "required": ["patient_name", "from_number"],
            "additionalProperties": False,
        },
        "filler": "One moment",
        "action": {
            "method": "POST",
            "url": "https://api.yourclinic.com/v1/appointments",
            "param": {"patient_name": "%(patient_name)s", "phone": "%(from_number)s"},
            "api_token": "Bearer clinic_token_xyz",
            "headers": {"X-Source": "voice"},
        },
    }
)


def test_openai_chat_shape() -> None:
    doc, lost = dump(RICH, "openai")
    assert lost == []
    assert doc == {
        "type": "function",
        "function": {
            "name": "book_appointment",
            "description": "Use when the caller wants to book an appointment",
            "parameters": RICH.parameters,
        },
    }


def test_openai_responses_shape_is_flat() -> None:
    doc, _ = dump(RICH, "openai-responses")
    assert doc == {
        "type": "function",
        "name": "book_appointment",
        "description": "Use when the caller wants to book an appointment",
        "parameters": RICH.parameters,
    }


def test_anthropic_shape() -> None:
    doc, _ = dump(RICH, "anthropic")
    assert doc == {
        "name": "book_appointment",
        "description": "Use when the caller wants to book an appointment",
        "input_schema": RICH.parameters,
    }


def test_gemini_shape() -> None:
    doc, _ = dump(RICH, "gemini")
    assert doc == {
        "name": "book_appointment",
        "description": "Use when the caller wants to book an appointment",
        "parameters": {
            "type": "OBJECT",
            "properties": {
                "patient_name": {"type": "STRING", "description": "Full name"},
                "slot": {"type": "STRING", "nullable": True, "description": "Preferred slot"},
                "guests": {"type": "INTEGER", "minimum": 0},
                "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
                "prefs": {"type": "OBJECT", "properties": {"quiet": {"type": "BOOLEAN"}}},
                "from_number": {"type": "STRING", "description": "Caller phone"},
            },
            "required": ["patient_name", "from_number"],
        },
    }


def test_gemini_drops_unsupported_keys_everywhere() -> None:
    doc, _ = dump(RICH, "gemini")
    text = json.dumps(doc)
    assert "additionalProperties" not in text
    assert '"null"' not in text


@pytest.mark.parametrize("dialect", LLM_DIALECTS)
def test_llm_dump_hides_context_filled_parameters(dialect: str) -> None:
    ctx = CallContext(from_number="+919876543210")
    doc, _ = dump(RICH, dialect, context=ctx)
    schema = _llm_schema(doc, dialect)
    assert "from_number" not in schema["properties"]
    assert schema["required"] == ["patient_name"]
    assert "patient_name" in schema["properties"]
    # The function itself still declares it.
    assert "from_number" in RICH.properties


@pytest.mark.parametrize("dialect", LLM_DIALECTS)
def test_llm_dump_does_not_mutate_the_function(dialect: str) -> None:
    before = RICH.to_dict()
    doc, _ = dump(RICH, dialect, context=CallContext(from_number="+1"))
    _llm_schema(doc, dialect)["properties"]["injected"] = {"type": "string"}
    assert RICH.to_dict() == before


def _llm_schema(doc: dict[str, Any], dialect: str) -> dict[str, Any]:
    if dialect == "openai":
        return doc["function"]["parameters"]
    if dialect == "anthropic":
        return doc["input_schema"]
    return doc["parameters"]


@st.composite
def llm_cases(draw: st.DrawFn) -> tuple[Function, CallContext, set[str]]:
    f = draw(functions())
    names = sorted(f.properties)
    filled = set(draw(st.lists(st.sampled_from(names), unique=True))) if names else set()
    ctx = CallContext(
        agent_id=draw(st.none() | st.just("agent~1")),
        from_number=draw(st.none() | st.just("+919876543210")),
        variables={n: "ctx~value" for n in filled},
    )
    return f, ctx, filled


@FAST
@given(llm_cases(), st.sampled_from(LLM_DIALECTS))
def test_llm_dump_never_leaks_the_action(
    case: tuple[Function, CallContext, set[str]], dialect: str
) -> None:
    f, ctx, filled = case
    doc, lost = dump(f, dialect, context=ctx)
    assert lost == []
    text = json.dumps(doc, ensure_ascii=False)
    a = f.http
    assert a.url not in text
    assert "https://" not in text
    assert "%(" not in text
    if a.token is not None:
        assert a.token not in text
        assert a.token.removeprefix("Bearer ") not in text
    for name, value in a.headers.items():
        assert name not in text
        assert value not in text
    if a.pre_call_webhook_url is not None:
        assert a.pre_call_webhook_url not in text
    assert "ctx~value" not in text
    schema = _llm_schema(doc, dialect)
    shown = set(schema.get("properties", {}))
    assert shown == set(f.properties) - filled
    assert set(schema.get("required", [])) == set(f.required) - filled
    assert doc.get("name", doc.get("function", {}).get("name")) == f.name


@FAST
@given(functions())
def test_llm_dump_without_context_shows_every_parameter(f: Function) -> None:
    for dialect in ("openai", "openai-responses", "anthropic"):
        doc, _ = dump(f, dialect)
        assert _llm_schema(doc, dialect)["properties"] == f.properties


# ------------------------------------------------------------------------------ detection


BOLNA_DOC = {
    "name": "get_product_details",
    "description": "Fetch product details",
    "parameters": {"type": "object", "properties": {}},
    "key": "custom_task",
    "value": {"method": "GET", "param": {}, "url": "https://my-api-dev.xyz"},
}
CALL2ME_DOC = {
    "name": "get_order_status",
    "description": "Look up an order",
    "url": "https://your-api.com/order-status",
    "method": "POST",
    "parameters": {"type": "object", "properties": {}},
    "speak_during_execution": "Let me check that for you...",
    "timeout_ms": 4000,
}
CALLKARO_DOC = {
    "name": "check_stock",
    "description": "Check product availability when customer asks if an item is in stock",
    "api_url": "https://api.example.com/inventory/check",
    "method": "GET",
    "parameters": [{"key": "product_id", "type": "string", "description": "The product"}],
}


@pytest.mark.parametrize(
    ("doc", "dialect"),
    [
        (BOLNA_DOC, "bolna"),
        (CALL2ME_DOC, "call2me"),
        (CALLKARO_DOC, "callkaro"),
        (base_function().to_dict(), "voicefn"),
    ],
)
def test_detect_platform_documents(doc: dict[str, Any], dialect: str) -> None:
    assert detect(doc) == dialect
    report = validate(doc)
    assert report.dialect == dialect
    assert report.ok, report.problems


@pytest.mark.parametrize("dialect", [*LOADABLE, "openai", "openai-responses", "anthropic"])
def test_detect_recognises_every_dump(dialect: str) -> None:
    f = base_function(action={"param": {"order_id": "%(order_id)s"}})
    doc, _ = dump(f, dialect)
    assert detect(doc) == dialect


def test_every_dialect_is_listed() -> None:
    assert set(DIALECTS) == {*LOADABLE, *LLM_DIALECTS}
    assert set(LOADABLE) == {"voicefn", *PLATFORMS, "vapi", "retell", "elevenlabs"}


@pytest.mark.parametrize("value", [None, [], "text", 5, {}])
def test_detect_unknown(value: Any) -> None:
    assert detect(value) is None


@pytest.mark.parametrize("dialect", ["openai", "openai-responses", "anthropic"])
def test_llm_tool_schema_has_no_action(dialect: str) -> None:
    doc, _ = dump(RICH, dialect)
    report = validate(doc)
    assert not report.ok
    assert report.function is None
    assert len(report.errors) == 1
    problem = report.errors[0]
    assert problem.path == "$"
    text = f"{problem.message} {problem.fix}".lower()
    assert "llm" in text
    assert "what to call" in text or "action" in text or "api" in text


def test_llm_dialect_cannot_be_loaded_explicitly() -> None:
    doc, _ = dump(RICH, "openai")
    report = validate(doc, "openai")
    assert not report.ok
    assert [p.path for p in report.errors] == ["$"]
