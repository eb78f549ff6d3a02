"""JavaScript functions checked statically: ``const __voicefn__``, the JSDoc, syntax errors from
the sandbox's Deno (never run) and imports that cannot work."""

from __future__ import annotations

import pytest

from voicefn.sandbox.contract import check_javascript, javascript_function
from voicefn.sandbox.javascript._advice import user_advice

FN = """\
{settings}
/**
 * Send the call summary to the CRM when the call ends.
 *
 * @param {{object}} data - the call data
 * @param {{string}} data.email - the caller's email address
 * @param {{integer}} [data.score=3] - how the call went, 1-5
 * @param {{string[]}} data.tags - labels
 */
async function sendSummary(data) {{
  return {{ status: "success" }};
}}
"""


def test_settings_and_jsdoc_make_the_function_document() -> None:
    settings = (
        'export const __voicefn__ = { phase: "in_call", name: "send_summary", timeout_ms: 1_000,\n'
        "  memory_mb: 64, filler: { en: 'One moment\\u2026', hi: \"Ek minute\" } };"
    )
    doc, problems = javascript_function(FN.format(settings=settings), engine=False)
    assert problems == []
    assert doc is not None
    assert (doc["name"], doc["phase"]) == ("send_summary", "in_call")
    assert doc["description"] == "Send the call summary to the CRM when the call ends."
    assert doc["filler"] == {"en": "One moment\u2026", "hi": "Ek minute"}
    assert (doc["action"]["timeout_ms"], doc["action"]["memory_mb"]) == (1000, 64)
    assert doc["action"]["entrypoint"] == "sendSummary"
    assert doc["parameters"] == {
        "type": "object",
        "properties": {
            "email": {"type": "string", "description": "the caller's email address"},
            "score": {"type": "integer", "description": "how the call went, 1-5", "default": 3},
            "tags": {"type": "array", "items": {"type": "string"}, "description": "labels"},
        },
        "required": ["email", "tags"],
    }


def test_without_settings_it_is_a_post_call_function() -> None:
    doc, problems = javascript_function("async function f(data) {\n  return 1;\n}\n", engine=False)
    assert problems == []
    assert doc is not None
    assert (doc["phase"], doc["description"]) == ("post_call", "Post-call function f")
    assert "timeout_ms" not in doc["action"]


@pytest.mark.parametrize(
    ("settings", "line", "message", "fix"),
    [
        (
            "const __voicefn__ = {\n  timeout: 1000 };",
            2,
            "unknown __voicefn__ key 'timeout'",
            "timeout_ms",
        ),
        (
            "const __voicefn__ = { timeout_ms: LIMIT };",
            1,
            "'LIMIT' is not a literal",
            "no variables",
        ),
        ("const __voicefn__ = { filler: `hi ${x}` };", 1, "not a literal", "${...}"),
        (
            "const __voicefn__ = { timeout_ms: 99999999 };",
            1,
            "timeout_ms must be an integer",
            "5000",
        ),
        ("const __voicefn__ = { phase: 'later' };", 1, "phase 'later' is not a phase", "post_call"),
        ("const __voicefn__ = { description: 'x' };", 1, "unknown __voicefn__ key", "JSDoc"),
        (
            "let __voicefn__ = {};\nconst __voicefn__ = {};",
            2,
            "set again (first at line 1)",
            "keep one",
        ),
        ("const __voicefn__ = makeSettings();", 1, "one literal object", "const __voicefn__"),
    ],
)
def test_bad_settings_are_errors_with_line_and_fix(
    settings: str, line: int, message: str, fix: str
) -> None:
    name, problems = check_javascript(FN.format(settings=settings), engine=False)
    assert name is None
    errors = [p for p in problems if p.severity == "error"]
    assert [p.line for p in errors] == [line], errors
    assert message in errors[0].message
    assert fix in errors[0].fix


def test_an_in_call_function_without_jsdoc_is_warned() -> None:
    code = 'const __voicefn__ = { phase: "in_call" };\nasync function f(data) {}\n'
    name, problems = check_javascript(code, engine=False)
    assert name == "f"
    assert [(p.line, p.severity) for p in problems] == [(2, "warning")]
    assert "no description" in problems[0].message


@pytest.mark.parametrize(
    ("code", "line", "column", "words"),
    [
        ("async function f(data) {\n  const x = {a: 1,, b: 2};\n  return x;\n}\n", 2, 19, "`,`"),
        ("async function f(data) {\n  const x: number = 1;\n}\n", 2, None, "syntax error"),
        ("export async function f(data) {\n  return data..x;\n}\n", 2, None, "syntax error"),
    ],
)
def test_syntax_errors_come_from_deno_with_line_and_column(
    code: str, line: int, column: int | None, words: str
) -> None:
    name, problems = check_javascript(code)
    assert name is None
    assert problems[0].line == line
    assert words in problems[0].message
    if column is not None:
        assert f"(column {column})" in problems[0].message


def test_what_only_v8_rejects_is_reported_too() -> None:
    name, problems = check_javascript("let x = 1;\nlet x = 2;\nasync function f(data) {}\n")
    assert name is None
    assert "Identifier 'x' has already been declared" in problems[0].message


def test_valid_code_passes_the_engine_and_top_level_await_and_return_are_fine() -> None:
    code = "const v = await Promise.resolve(1);\nasync function f(data) { return v; }\n"
    assert check_javascript(code) == ("f", [])


def test_without_deno_the_light_check_says_the_full_one_was_skipped(monkeypatch) -> None:
    import voicefn.sandbox.javascript._parse as parse

    real = parse.find_deno  # a host without Deno: the binary asked for does not exist
    monkeypatch.setattr(parse, "find_deno", lambda _: real("/nonexistent/deno"))
    parse.engine_syntax_problems.cache_clear()
    try:
        name, problems = check_javascript("async function f(data) {\n  return 2;\n}\n")
    finally:
        parse.engine_syntax_problems.cache_clear()
    assert name == "f"
    assert [p.severity for p in problems] == ["warning"]
    assert "full syntax check was skipped" in problems[0].message


def test_deno_flag_advice_and_import_wording_are_rewritten() -> None:
    read = 'NotCapable: Requires read access to "/etc/x", run again with the --allow-read flag'
    assert "--allow" not in user_advice(read)
    assert "no file access" in user_advice(read)
    net = 'NotCapable: Requires net access to "a:1", run again with the --allow-net flag'
    assert "fetch or axios" in user_advice(net)
    missing = (
        'TypeError: Import "left-pad" not a dependency and not in import map from "blob:null/1"'
    )
    assert user_advice(missing).startswith("import of 'left-pad' failed")
