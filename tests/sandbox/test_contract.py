"""The static contract of customer code: checked from the AST, never run."""

from __future__ import annotations

import keyword
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicefn.sandbox.contract import (
    ANY_SCHEMA,
    CodeProblem,
    check_javascript,
    check_python,
    python_function,
)
from voicefn.spec import Function, PythonAction
from voicefn.validation import validate_document

# Seed 003's two examples, verbatim.
SEED_SIGNATURE = '''async def function_name(
    ctx: RunContext,
    param1: str,
    param2: int = 1
) -> dict:
    """
    Function description for AI
    
    Args:
        ctx: LiveKit RunContext
        param1: Description of param1
        param2: Description of param2
        
    Returns:
        dict: {
            status: "success" | "error",
            data: { ... }
        }
    """
    # Your code here
'''  # noqa: W293

SEED_WEATHER = (Path(__file__).parent / "seed_get_weather.py.txt").read_text()

WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "City name or coordinates"},
        "days": {
            "type": "integer",
            "description": "Number of days for forecast (1-7)",
            "default": 1,
        },
    },
    "required": ["location"],
}


def errors(problems: list[CodeProblem]) -> list[CodeProblem]:
    return [p for p in problems if p.severity == "error"]


def warnings_of(problems: list[CodeProblem]) -> list[CodeProblem]:
    return [p for p in problems if p.severity == "warning"]


def only_error(code: str, **kwargs: Any) -> CodeProblem:
    signature, problems = check_python(textwrap.dedent(code), **kwargs)
    assert signature is None
    found = errors(problems)
    assert len(found) == 1, found
    return found[0]


CITY_DOC = "Look up a city.\n\n    Args:\n        city: The city.\n    "


def fn(params: str = "ctx: RunContext, city: str", doc: str = CITY_DOC) -> str:
    """A valid function around the given parameters (docstring on line 2)."""
    return f'async def lookup({params}) -> dict:\n    """{doc}"""\n    return {{"status": "success"}}\n'


def schema_of(params: str, doc: str = CITY_DOC) -> dict[str, Any]:
    signature, problems = check_python(fn(params, doc))
    assert signature is not None, problems
    return signature.schema


# ------------------------------------------------------------------------------ the seed


def test_seed_weather_example_derives_the_exact_document() -> None:
    doc, problems = python_function(SEED_WEATHER)
    assert problems == []
    assert doc == {
        "name": "get_weather",
        "description": "Get weather forecast for a location.",
        "phase": "in_call",
        "parameters": WEATHER_PARAMETERS,
        "action": {"type": "python", "code": SEED_WEATHER, "entrypoint": "get_weather"},
    }
    function = Function.model_validate(doc)
    assert isinstance(function.action, PythonAction)
    assert function.required == ["location"]


def test_seed_weather_document_passes_validation() -> None:
    doc, _ = python_function(SEED_WEATHER)
    _, problems = validate_document(doc)
    # Accepting python actions is validation.py's business; everything else must be clean.
    assert [p for p in problems if p.severity == "error" and p.path != "$.action.type"] == []


def test_seed_signature_example_passes() -> None:
    signature, problems = check_python(SEED_SIGNATURE)
    assert signature is not None
    assert errors(problems) == []
    assert signature.name == signature.entrypoint == "function_name"
    assert signature.description == "Function description for AI"
    assert signature.schema == {
        "type": "object",
        "properties": {
            "param1": {"type": "string", "description": "Description of param1"},
            "param2": {"type": "integer", "description": "Description of param2", "default": 1},
        },
        "required": ["param1"],
    }
    # The example body is only a comment: it returns nothing, which is worth a warning.
    assert [p.line for p in warnings_of(problems)] == [1]
    assert "never returns" in warnings_of(problems)[0].message


def test_name_and_entrypoint_arguments() -> None:
    code = SEED_WEATHER + "\n\nasync def other(ctx: RunContext) -> dict:\n    '''Other.'''\n"
    doc, problems = python_function(code)
    assert doc is None
    assert "several top-level async functions" in errors(problems)[0].message
    assert "get_weather (line 1)" in errors(problems)[0].message
    doc, problems = python_function(code, entrypoint="get_weather", name="weather-now")
    assert doc is not None, problems
    assert doc["name"] == "weather-now"
    assert doc["action"]["entrypoint"] == "get_weather"
    doc, problems = python_function(SEED_WEATHER, name="has space")
    assert doc is None
    assert "not a valid function name" in errors(problems)[0].message


def test_entrypoint_not_found_suggests_the_closest() -> None:
    problem = only_error(SEED_WEATHER, entrypoint="get_wether")
    assert problem.line is None
    assert "get_weather" in problem.fix


# ------------------------------------------------------------------------- broken rules


def test_syntax_error_reports_its_line() -> None:
    code = 'async def f(ctx: RunContext) -> dict:\n    """Doc."""\n    return {"status": "ok"\n\n'
    problem = only_error(code)
    assert problem.line == 3
    assert problem.message.startswith("syntax error")


def test_long_syntax_error_lines_are_shortened() -> None:
    problem = only_error("x = (" + "1, " * 200 + "\n")
    assert problem.line == 1
    assert len(problem.fix) < 120


def test_syntax_error_later_in_file() -> None:
    problem = only_error(fn() + "\nx = = 1\n")
    assert problem.line == 9


def test_not_async() -> None:
    problem = only_error(fn().replace("async def", "def"))
    assert problem.line == 1
    assert "must be 'async def'" in problem.message


def test_plain_def_beside_async_helpers_is_not_the_entrypoint() -> None:
    code = "def helper(x: int) -> int:\n    return x\n\n\n" + fn()
    signature, problems = check_python(code)
    assert signature is not None, problems
    assert signature.entrypoint == "lookup"


def test_named_plain_def_must_be_async() -> None:
    code = fn() + "\n\ndef helper(ctx: RunContext) -> dict:\n    '''Help.'''\n    return {}\n"
    problem = only_error(code, entrypoint="helper")
    assert problem.line == 10
    assert "async def" in problem.message


def test_no_function_at_all() -> None:
    problem = only_error("x = 1\n")
    assert problem.line is None
    assert "no function" in problem.message


def test_no_ctx() -> None:
    code = """\
        async def lookup(
            city: str,
        ) -> dict:
            '''Look up a city.'''
            return {"status": "success"}
    """
    problem = only_error(code)
    assert problem.line == 2
    assert "ctx: RunContext" in problem.message


def test_no_parameters_at_all() -> None:
    problem = only_error(fn(params=""))
    assert problem.line == 1
    assert "ctx: RunContext" in problem.message


def test_ctx_not_first() -> None:
    code = """\
        async def lookup(
            city: str,
            ctx: RunContext,
        ) -> dict:
            '''Look up a city.'''
            return {"status": "success"}
    """
    problem = only_error(code)
    assert problem.line == 3
    assert "first" in problem.message


def test_ctx_wrong_annotation_or_name() -> None:
    assert "annotated RunContext" in only_error(fn("ctx: dict, city: str")).message
    assert "annotated RunContext" in only_error(fn("ctx, city: str")).message
    assert "named ctx" in only_error(fn("context: RunContext, city: str")).message


@pytest.mark.parametrize(
    "annotation",
    ["RunContext", "livekit.agents.RunContext", "RunContext[UserData]", "'RunContext'"],
)
def test_ctx_annotation_forms(annotation: str) -> None:
    assert schema_of(f"ctx: {annotation}, city: str")["required"] == ["city"]


def test_missing_annotation() -> None:
    code = """\
        async def lookup(
            ctx: RunContext,
            city,
        ) -> dict:
            '''Look up a city.'''
            return {"status": "success"}
    """
    problem = only_error(code)
    assert problem.line == 3
    assert "'city' has no type annotation" in problem.message
    assert "str" in problem.fix


@pytest.mark.parametrize(
    ("annotation", "hint"),
    [
        ("Path", "path as a str"),
        ("pathlib.Path", "path as a str"),
        ("bytes", "base64"),
        ("MyClass", "custom classes"),
        ("Callable[[int], int]", "functions cannot"),
        ("typing.Callable", "functions cannot"),
        ("tuple[int, int]", "list"),
        ("set[str]", "list"),
        ("datetime", "ISO 8601"),
        ("'Path'", "path as a str"),
        ("list[bytes]", "base64"),
        ("dict[int, str]", "keys are strings"),
        ("Optional[MyClass]", "custom classes"),
        ("list[str] | dict", "unions"),
        ("Literal[x]", "Literal values"),
        ("Optional", "type arguments"),
    ],
)
def test_forbidden_types(annotation: str, hint: str) -> None:
    code = f"""\
        async def lookup(
            ctx: RunContext,
            city: str,
            thing: {annotation},
        ) -> dict:
            '''Look up a city.'''
            return {{"status": "success"}}
    """
    problem = only_error(code)
    assert problem.line == 4
    assert "'thing'" in problem.message
    assert hint in problem.message
    assert problem.fix


def test_forbidden_type_message_names_the_type() -> None:
    problem = only_error(fn("ctx: RunContext, f: MyFile"))
    assert "'MyFile'" in problem.message
    assert "Literal" in problem.fix


def test_no_docstring() -> None:
    code = 'async def lookup(ctx: RunContext, city: str) -> dict:\n    return {"status": "ok"}\n'
    problem = only_error(code)
    assert problem.line == 1
    assert "docstring" in problem.message


def test_docstring_without_summary_is_an_error_in_call_only() -> None:
    problem = only_error(fn(doc="Args:\n        city: the city\n    "))
    assert problem.line == 2
    assert "summary" in problem.message
    pre_call = "__voicefn__ = {'phase': 'pre_call'}\n" + fn(doc="Args:\n        city: the city\n")
    signature, problems = check_python(pre_call)
    assert signature is not None
    assert any("summary" in p.message for p in warnings_of(problems))


def test_no_return_annotation() -> None:
    code = (
        'async def lookup(ctx: RunContext, city: str):\n    """Doc."""\n    return {"status": 1}\n'
    )
    problem = only_error(code)
    assert problem.line == 1
    assert "return annotation" in problem.message
    assert "-> dict" in problem.fix


@pytest.mark.parametrize(
    "ret", ["dict", "Dict[str, Any]", "dict[str, Any]", "typing.Dict", "'dict'"]
)
def test_dict_return_annotations(ret: str) -> None:
    signature, problems = check_python(fn().replace("-> dict", f"-> {ret}"))
    assert signature is not None, problems


def test_wrong_return_annotation() -> None:
    code = 'async def lookup(ctx: RunContext, city: str) -> (\n    str\n):\n    """Doc."""\n    return {"status": 1}\n'
    problem = only_error(code)
    assert problem.line == 2
    assert "must return dict, not str" in problem.message


def test_star_args_kwargs_and_positional_only() -> None:
    code = """\
        async def lookup(
            ctx: RunContext,
            a: str,
            /,
            b: str,
            *rest: str,
            c: int = 1,
            **extra: Any,
        ) -> dict:
            '''Look up.

            Args:
                a: A.
                b: B.
                c: C.
            '''
            return {"status": "success"}
    """
    _, problems = check_python(textwrap.dedent(code))
    found = {(p.line, p.message.split(" ")[0]) for p in errors(problems)}
    assert found == {(3, "a"), (6, "*rest"), (8, "**extra")}


def test_duplicate_parameter_names() -> None:
    # The parser accepts them; only the compiler would complain.
    problem = only_error(fn("ctx: RunContext, city: str, city: int"))
    assert problem.line == 1
    assert "twice" in problem.message


def test_ctx_may_be_positional_only_and_keyword_only_parameters_are_fine() -> None:
    schema = schema_of("ctx: RunContext, /, city: str, *, country: str = 'IN'")
    assert list(schema["properties"]) == ["city", "country"]
    assert schema["required"] == ["city"]


def test_non_literal_default() -> None:
    code = """\
        async def lookup(
            ctx: RunContext,
            city: str = os.environ["CITY"],
        ) -> dict:
            '''Look up a city.'''
            return {"status": "success"}
    """
    problem = only_error(code)
    assert problem.line == 3
    assert "not a JSON literal" in problem.message


@pytest.mark.parametrize("default", ["b'x'", "{1, 2}", "1j", "1e999", "{1: 'a'}", "x.y", "f()"])
def test_defaults_must_be_json(default: str) -> None:
    problem = only_error(fn(f"ctx: RunContext, v: Any = {default}"))
    assert problem.line == 1
    assert "default" in problem.message


def test_default_must_match_the_type() -> None:
    problem = only_error(fn("ctx: RunContext, days: int = 'one'"))
    assert "does not match its type int" in problem.message
    problem = only_error(fn("ctx: RunContext, city: str = None"))
    assert "str | None = None" in problem.fix
    problem = only_error(fn("ctx: RunContext, ok: int = True"))
    assert "'ok'" in problem.message


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("{'phase': 'post_call'}", "not a Python phase"),
        ("{'phase': 'later'}", "not a Python phase"),
        ("{'fillr': 'One moment'}", "unknown __voicefn__ key 'fillr'"),
        ("{'description': 'x'}", "unknown __voicefn__ key"),
        ("{'filler': ''}", "filler"),
        ("{'filler': {'en': 1}}", "filler"),
        ("{'name': 'has space'}", "name"),
        ("{'timeout_ms': 0}", "timeout_ms"),
        ("{'timeout_ms': 10**6}", "__voicefn__ must be one literal dict"),
        ("{'memory_mb': 4}", "memory_mb"),
        ("{'memory_mb': True}", "memory_mb"),
        ("dict(phase='in_call')", "__voicefn__ must be one literal dict"),
        ("['in_call']", "__voicefn__ must be one literal dict"),
    ],
)
def test_bad_voicefn_settings(setting: str, message: str) -> None:
    code = f"import json\n\n__voicefn__ = {setting}\n\n" + fn()
    problem = only_error(code)
    assert problem.line == 3
    assert message in problem.message


def test_voicefn_settings_report_the_line_of_the_key() -> None:
    code = "__voicefn__ = {\n    'phase': 'in_call',\n    'colour': 'red',\n}\n" + fn()
    problem = only_error(code)
    assert problem.line == 3
    assert "use only phase" in problem.fix


def test_voicefn_set_twice() -> None:
    code = "__voicefn__ = {}\n__voicefn__ = {}\n" + fn()
    problem = only_error(code)
    assert problem.line == 2
    assert "first at line 1" in problem.message


def test_voicefn_settings_set_the_function_fields() -> None:
    code = (
        "__voicefn__ = {'phase': 'pre_call', 'filler': {'en': 'One moment', 'hi': 'Ek minute'},"
        " 'name': 'city-lookup', 'timeout_ms': 3000, 'memory_mb': 128}\n" + fn()
    )
    doc, problems = python_function(code)
    assert problems == []
    assert doc is not None
    assert doc["name"] == "city-lookup"
    assert doc["phase"] == "pre_call"
    assert doc["filler"] == {"en": "One moment", "hi": "Ek minute"}
    assert doc["action"] == {
        "type": "python",
        "code": code,
        "entrypoint": "lookup",
        "timeout_ms": 3000,
        "memory_mb": 128,
    }
    function = Function.model_validate(doc)
    assert function.filler_for("hi-IN") == "Ek minute"


def test_invalid_function_name_needs_a_name_setting() -> None:
    code = fn().replace("lookup", "größe")
    problem = only_error(code)
    assert problem.line == 1
    assert "__voicefn__" in problem.fix
    signature, _ = check_python("__voicefn__ = {'name': 'groesse'}\n" + code)
    assert signature is not None
    assert signature.name == "groesse"
    assert signature.entrypoint == "größe"


def test_yield_is_an_error() -> None:
    code = fn().replace('    return {"status": "success"}', '    yield {"status": "success"}')
    problem = only_error(code)
    assert problem.line == 7
    assert "yield" in problem.message


def test_return_warnings() -> None:
    code = """\
        async def lookup(ctx: RunContext, city: str) -> dict:
            '''Look up a city.

            Args:
                city: The city.
            '''
            async def helper() -> None:
                return None
            if city:
                return {"result": 1}
            return
    """
    signature, problems = check_python(textwrap.dedent(code))
    assert signature is not None
    assert [(p.line, p.severity) for p in problems] == [(10, "warning"), (11, "warning")]
    assert "'status'" in problems[0].message


def test_decorator_warning() -> None:
    signature, problems = check_python("@function_tool()\n" + fn())
    assert signature is not None
    assert [p.line for p in warnings_of(problems)] == [1]


def test_every_problem_is_reported_at_once() -> None:
    code = """\
        import pathlib


        def lookup(
            city,
            where: pathlib.Path,
            *more: str,
            days: int = compute(),
        ):
            return {"status": "success"}
    """
    signature, problems = check_python(textwrap.dedent(code))
    assert signature is None
    # line 4: not async, no docstring, no return annotation; line 5: no ctx, city unannotated;
    # 6: Path; 7: *more; 8: non-literal default.
    assert [p.line for p in errors(problems)] == [4, 4, 4, 5, 5, 6, 7, 8]


def test_exactly_five_problems_on_five_lines() -> None:
    code = """\
        __voicefn__ = {"phase": "soon"}
        async def lookup(
            ctx: RunContext,
            city,
            where: bytes,
            *more: str,
            days: int = compute(),
        ) -> dict:
            '''Look up a city.'''
            return {"status": "success"}
    """
    _, problems = check_python(textwrap.dedent(code))
    assert [p.line for p in errors(problems)] == [1, 4, 5, 6, 7]


# ------------------------------------------------------------------------------- schemas


def test_literal_becomes_enum() -> None:
    schema = schema_of("ctx: RunContext, size: Literal['small', 'large'], n: Literal[1, 2] = 1")
    assert schema["properties"]["size"] == {"type": "string", "enum": ["small", "large"]}
    assert schema["properties"]["n"] == {"type": "integer", "enum": [1, 2], "default": 1}
    assert schema["required"] == ["size"]
    mixed = schema_of("ctx: RunContext, v: typing.Literal['a', 1, True, None]")
    assert mixed["properties"]["v"] == {
        "type": ["string", "integer", "boolean", "null"],
        "enum": ["a", 1, True, None],
    }


def test_optional_is_not_required() -> None:
    schema = schema_of(
        "ctx: RunContext, a: Optional[str], b: int | None, c: typing.Optional[list[int]] = None,"
        " d: Union[str, None] = 'x', e: Optional[Literal['y', 'n']] = None"
    )
    props = schema["properties"]
    assert props["a"] == {"type": ["string", "null"], "default": None}
    assert props["b"] == {"type": ["integer", "null"], "default": None}
    assert props["c"] == {"type": ["array", "null"], "items": {"type": "integer"}, "default": None}
    assert props["d"] == {"type": ["string", "null"], "default": "x"}
    assert props["e"] == {"type": ["string", "null"], "enum": ["y", "n", None], "default": None}
    assert schema["required"] == []


def test_defaults_become_default() -> None:
    schema = schema_of(
        "ctx: RunContext, n: int = -3, x: float = 1, ok: bool = False,"
        " tags: list[str] = ('a', 'b'), opts: dict[str, Any] = {'k': [1, None]}, s: str = 'hi'"
    )
    assert {k: v["default"] for k, v in schema["properties"].items()} == {
        "n": -3,
        "x": 1,
        "ok": False,
        "tags": ["a", "b"],
        "opts": {"k": [1, None]},
        "s": "hi",
    }
    assert schema["required"] == []


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        ("str", {"type": "string"}),
        ("int", {"type": "integer"}),
        ("float", {"type": "number"}),
        ("bool", {"type": "boolean"}),
        ("None", {"type": "null"}),
        ("dict", {"type": "object"}),
        ("list", {"type": "array"}),
        ("typing.List", {"type": "array"}),
        ("list[str]", {"type": "array", "items": {"type": "string"}}),
        ("List[int]", {"type": "array", "items": {"type": "integer"}}),
        ("list[Any]", {"type": "array"}),
        ("dict[str, Any]", {"type": "object"}),
        ("typing.Dict[str, typing.Any]", {"type": "object"}),
        ("dict[str, int]", {"type": "object", "additionalProperties": {"type": "integer"}}),
        (
            "list[dict[str, str]]",
            {
                "type": "array",
                "items": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        ),
        ("str | int", {"type": ["string", "integer"]}),
        ("Annotated[str, 'meta']", {"type": "string"}),
        ("'list[str]'", {"type": "array", "items": {"type": "string"}}),
        ("builtins.str", {"type": "string"}),
    ],
)
def test_type_mapping(annotation: str, expected: dict[str, Any]) -> None:
    schema = schema_of(f"ctx: RunContext, v: {annotation}", doc="Do it.")
    assert schema["properties"]["v"] == expected


def test_any_is_a_warning_and_an_untyped_value() -> None:
    signature, problems = check_python(
        fn("ctx: RunContext, v: Any", doc="Do it.\n\n    Args:\n        v: anything")
    )
    assert signature is not None
    assert signature.schema["properties"]["v"] == {**ANY_SCHEMA, "description": "anything"}
    assert signature.schema["required"] == ["v"]
    assert [(p.line, p.severity) for p in problems] == [(1, "warning")]
    assert "Any" in problems[0].message


def test_args_descriptions() -> None:
    doc = """Find a flight.

    Longer text that is not the summary.

    Args:
        origin (str): Where from,
            an IATA code.
        destination: Where to.
        unknown: Not a parameter.

    Returns:
        dict: the flights
    """
    signature, problems = check_python(
        fn("ctx: RunContext, origin: str, destination: str, when: str = ''", doc)
    )
    assert signature is not None
    assert signature.description == "Find a flight."
    props = signature.schema["properties"]
    assert props["origin"]["description"] == "Where from, an IATA code."
    assert props["destination"]["description"] == "Where to."
    assert "description" not in props["when"]
    assert sorted((p.line, p.message) for p in warnings_of(problems)) == [
        (1, "parameter 'when' is not described in the docstring's Args: section"),
        (2, "the docstring describes 'unknown', which is not a parameter"),
    ]


def test_multi_line_summary_is_joined() -> None:
    signature, _ = check_python(
        fn(
            doc="Look up a city\n    when the caller names one.\n\n    Args:\n        city: The city."
        )
    )
    assert signature is not None
    assert signature.description == "Look up a city when the caller names one."


def test_sphinx_params_are_understood() -> None:
    signature, problems = check_python(fn(doc="Look up.\n\n    :param city: The city.\n"))
    assert signature is not None
    assert signature.parameters[0].description == "The city."
    assert warnings_of(problems) == []


_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(
    lambda n: not keyword.iskeyword(n) and n != "ctx"
)
_TYPES: list[tuple[str, dict[str, Any], st.SearchStrategy[Any]]] = [
    ("str", {"type": "string"}, st.text(max_size=8)),
    ("int", {"type": "integer"}, st.integers(-(10**6), 10**6)),
    ("float", {"type": "number"}, st.floats(allow_nan=False, allow_infinity=False)),
    ("bool", {"type": "boolean"}, st.booleans()),
    ("dict", {"type": "object"}, st.dictionaries(st.text(max_size=4), st.integers(), max_size=3)),
    ("list", {"type": "array"}, st.lists(st.integers(), max_size=3)),
    (
        "list[str]",
        {"type": "array", "items": {"type": "string"}},
        st.lists(st.text(max_size=4), max_size=3),
    ),
    (
        "dict[str, Any]",
        {"type": "object"},
        st.dictionaries(st.text(max_size=4), st.none(), max_size=2),
    ),
    ("Literal['a', 'b']", {"type": "string", "enum": ["a", "b"]}, st.sampled_from(["a", "b"])),
    ("Optional[int]", {"type": ["integer", "null"]}, st.none() | st.integers()),
    ("str | None", {"type": ["string", "null"]}, st.none() | st.text(max_size=4)),
]


@st.composite
def signatures(draw: st.DrawFn) -> tuple[str, list[tuple[str, int, bool, Any, str | None]]]:
    names = draw(st.lists(_NAMES, unique=True, max_size=6))
    params: list[tuple[str, int, bool, Any, str | None]] = []
    for name in names:
        t = draw(st.integers(0, len(_TYPES) - 1))
        has_default = draw(st.booleans())
        default = draw(_TYPES[t][2]) if has_default else None
        description = draw(
            st.none() | st.from_regex(r"[A-Za-z][A-Za-z0-9 ,.()-]{0,20}", fullmatch=True)
        )
        params.append((name, t, has_default, default, description))
    keyword_only = draw(st.booleans())
    if not keyword_only:  # defaults last, as Python wants
        params.sort(key=lambda p: p[2])
    rendered = [f"{n}: {_TYPES[t][0]}" + (f" = {d!r}" if h else "") for n, t, h, d, _ in params]
    head = ["ctx: RunContext", *(["*"] if keyword_only and rendered else []), *rendered]
    args = "".join(f"\n        {n}: {d}" for n, _, _, _, d in params if d)
    doc = "Do something useful." + (f"\n\n    Args:{args}\n    " if args else "")
    return fn(", ".join(head), doc), params


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(signatures())
def test_generated_signatures_yield_matching_schemas(
    generated: tuple[str, list[tuple[str, int, bool, Any, str | None]]],
) -> None:
    code, params = generated
    signature, problems = check_python(code)
    assert signature is not None, (code, problems)
    schema = signature.schema
    assert list(schema["properties"]) == [p[0] for p in params]
    optional = {
        i
        for i, (annotation, _, _) in enumerate(_TYPES)
        if "None" in annotation or "Optional" in annotation
    }
    assert schema["required"] == [n for n, t, h, _, _ in params if not h and t not in optional]
    for name, t, has_default, default, description in params:
        prop = dict(schema["properties"][name])
        if has_default or t in optional:
            assert prop.pop("default") == (default if has_default else None)
        assert prop.pop("description", None) == (description.strip() if description else None)
        assert prop == _TYPES[t][1]
    doc, _ = python_function(code)
    assert doc is not None
    Function.model_validate(doc)


# ----------------------------------------------------------------------- never executed


def test_checking_never_executes_the_code(tmp_path: Any) -> None:
    opened = tmp_path / "voicefn_pwned"
    touched = tmp_path / "voicefn_pwned_by_system"
    code = f"""\
import os
open({str(opened)!r}, "w").write("pwned")
os.system("touch {touched}")
__import__("os").system("touch {touched}")

class Meta(type):
    def __new__(mcs, *a):
        open({str(opened)!r}, "w")

__voicefn__ = {{"phase": "in_call"}}

@(open({str(opened)!r}, "w") and (lambda f: f))
async def lookup(
    ctx: RunContext,
    city: "open({str(opened)!r}, 'w')",
    days: int = open({str(opened)!r}, "w"),
) -> dict:
    '''Look up a city.'''
    os.system("touch {touched}")
    return {{"status": "success"}}
"""
    check_python(code)
    python_function(code)
    check_javascript(code)
    assert not opened.exists()
    assert not touched.exists()


def test_python_warnings_in_customer_code_do_not_escape() -> None:
    # pytest turns warnings into errors: an invalid escape must become a problem, not a raise.
    code = fn().replace('return {"status": "success"}', 'return {"status": "\\d"}')
    signature, problems = check_python(code)
    assert signature is not None
    assert [(p.line, p.severity) for p in problems] == [(7, "warning")]


@pytest.mark.parametrize(
    "code",
    [
        "x = " + "a+" * 50_000 + "a\n",
        "x = " + "(" * 500 + ")" * 500 + "\n",
        "a\x00b\n",
        "x = 1\n" * 100_000,
        fn("ctx: RunContext, v: " + "list[" * 40 + "str" + "]" * 40),
        fn("ctx: RunContext, v: int = " + "-" * 5_000 + "1"),
    ],
)
def test_hostile_shapes_are_reported_not_raised(code: str) -> None:
    signature, problems = check_python(code)
    assert signature is None
    assert errors(problems)


def test_code_problem_conversions() -> None:
    problem = CodeProblem(3, "bad", "do better")
    assert str(problem) == "error: line 3: bad. Fix: do better"
    converted = problem.to_problem()
    assert (converted.path, converted.found, converted.severity) == (
        "$.action.code",
        "line 3",
        "error",
    )
    assert str(CodeProblem(None, "bad", "fix", "warning")) == "warning: bad. Fix: fix"


# ---------------------------------------------------------------------------- JavaScript

JS_VALID = """\
// Next date of action (NDOA), seed 000's post-call example
async function calculateNdoa(data) {
  const outcome = data.variables?.outcome ?? "unknown";   // a } in a comment
  const re = /[{(]+\\/}/g;
  const label = `ndoa: ${outcome.replace(re, "")} {${ `${1 + 2}` }`;
  /* a block comment { [ ( */
  const days = _.get({ a: [1, 2, 3] }, "a.length", 0) / 2;
  try {
    const res = await axios.post("https://crm.example.com/ndoa", { label, days });
    return { status: "success", next: moment().add(days, "days").format("YYYY-MM-DD") };
  } catch (err) {
    return { status: "error", message: String(err) };
  }
}
"""


def test_js_valid_function_passes() -> None:
    name, problems = check_javascript(JS_VALID)
    assert (name, problems) == ("calculateNdoa", [])


def test_js_unbalanced_brace_reports_the_line() -> None:
    code = "async function f(data) {\n  if (data.x) {\n    return 1;\n}\n"
    name, problems = check_javascript(code)
    assert name is None
    assert [(p.line, p.severity) for p in problems] == [(1, "error")]
    assert "never closed" in problems[0].message


def test_js_unexpected_closer_reports_its_line() -> None:
    code = "async function f(data) {\n  return 1;\n}\n}\n"
    _, problems = check_javascript(code)
    assert [(p.line, p.message) for p in problems] == [(4, "unexpected '}': nothing is open")]
    _, problems = check_javascript("async function f(data) {\n  g(1];\n}\n")
    assert problems[0].line == 2
    assert "opened at line 2" in problems[0].message


@pytest.mark.parametrize(
    ("code", "line"),
    [
        ("async function f(data) {\n  return 'abc;\n}\n", 2),
        ("async function f(data) {\n  return `abc;\n}\n", 2),
        ("async function f(data) {\n  /* never closed\n}\n", 2),
    ],
)
def test_js_unterminated_literals(code: str, line: int) -> None:
    _, problems = check_javascript(code)
    assert [p.line for p in problems] == [line]


def test_js_imports_that_cannot_work_are_errors_naming_the_module() -> None:
    code = (
        "const fs = require('fs');\n"
        "import crypto from 'node:crypto';\n"
        'import ax from "axios";\n'
        "import cp from 'child_process';\n"
        "const m = await import('https://evil.example.com/x.js');\n"
        "const n = require(name);\n"
        "import extra from 'fs-extra';\n"
        "import get from 'lodash/get';\n"
        "async function f(data) { return { status: 'success' }; }\n"
    )
    name, problems = check_javascript(code, engine=False)
    assert name is None
    assert [(p.line, p.severity) for p in problems] == [
        (1, "error"),
        (4, "error"),
        (5, "error"),
        (6, "warning"),
        (7, "error"),
        (8, "error"),
    ]
    assert "require() is not available" in problems[0].message
    assert "import of 'child_process'" in problems[1].message
    assert "network" in problems[2].message
    assert problems[4].message == "import of 'fs-extra': the module is not available in the sandbox"
    assert problems[5].message == (
        "import of 'lodash/get': only 'lodash' itself can be imported, not a file inside it"
    )
    assert 'import { get } from "lodash"' in problems[5].fix


def test_js_vendored_libraries_may_be_imported_by_name() -> None:
    """axios, moment and lodash are globals, and the import map also maps their names."""
    code = (
        'import axios from "axios";\n'
        "import moment from 'moment';\n"
        'import _, { get } from "lodash";\n'
        "export async function f(data) { return { status: 'success' }; }\n"
    )
    assert check_javascript(code, engine=False) == ("f", [])
    dynamic = "async function f(data) { const { default: m } = await import('moment'); }\n"
    assert check_javascript(dynamic, engine=False) == ("f", [])
    for sub in ("axios/unsafe/adapters/http.js", "moment/locale/de"):
        _, problems = check_javascript(f"import x from '{sub}';\n{dynamic}", engine=False)
        assert [p.severity for p in problems] == ["error"], sub
        assert "itself can be imported" in problems[0].message


def test_js_entrypoint_rules() -> None:
    two = "async function a(data) {}\nasync function b(data) {}\n"
    name, problems = check_javascript(two)
    assert name is None
    assert problems[0].line == 2
    assert check_javascript(two, entrypoint="b") == ("b", [])
    name, problems = check_javascript("function a(data) {\n}\n")
    assert name is None
    assert "async function" in problems[0].message
    name, problems = check_javascript("const f = async (data) => 1;\n")
    assert name is None
    assert "arrow" in problems[0].fix
    name, problems = check_javascript(two, entrypoint="c")
    assert name is None
    assert problems[0].line is None
    nested = (
        "async function outer(data) {\n  async function inner(x) {}\n  return inner(data);\n}\n"
    )
    assert check_javascript(nested) == ("outer", [])


@pytest.mark.parametrize(
    ("params", "count"), [("", 0), ("data, extra", 2), ("{ a, b } = {}, c", 2)]
)
def test_js_parameter_count_warns(params: str, count: int) -> None:
    name, problems = check_javascript(f"async function f({params}) {{\n  return 1;\n}}\n")
    assert name == "f"
    assert [(p.line, p.severity) for p in problems] == [(1, "warning")]
    assert f"takes {count} parameters" in problems[0].message
