"""The public API changes only on purpose."""

import sys

import voicefn


def test_all_is_sorted_and_resolvable():
    assert voicefn.__all__ == sorted(voicefn.__all__, key=lambda n: (not n.isupper(), n))
    for name in voicefn.__all__:
        assert hasattr(voicefn, name), name


def test_public_members():
    assert set(voicefn.__all__) == {
        "DIALECTS", "SYSTEM_VARIABLES", "Agent", "ArgumentError", "BuiltinAction", "CallContext",
        "CallSession", "EgressDenied", "EgressPolicy", "Executor", "Function",
        "FunctionValidationError", "HttpAction", "LLMSettings", "Problem", "Report",
        "RequestRecord", "Timings", "ToolResult", "__version__", "bind", "dump",
        "llm_parameters", "load_agent", "load_function", "load_functions", "validate",
    }  # fmt: skip


def test_importing_voicefn_does_not_load_test_doubles_or_telephony():
    import subprocess

    code = "import sys, voicefn; print(any(m.startswith(('voicefn.testing', 'voicefn.telephony', 'twilio')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_importing_voicefn_loads_neither_the_llm_client_nor_the_engine():
    import subprocess

    code = (
        "import sys, voicefn; "
        "print(sorted(m for m in ('openai', 'voicefn.executor', 'voicefn.runtime.session', "
        "'voicefn.dialects') if m in sys.modules)); "
        "print(voicefn.CallSession.__name__, voicefn.Function.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "CallSession Function"]
