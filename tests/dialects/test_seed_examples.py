"""Every function example in the platform docs (the seeds) loads unchanged, in the right dialect.

``seed_examples/`` holds each example byte for byte as the seed prints it (one file per function,
named after it). When the seeds are present next to the repository, a scan makes sure no example
in them is missing from ``seed_examples/``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from voicefn import Function, load_function
from voicefn.dialects import dump, validate

HERE = Path(__file__).resolve().parent
EXAMPLES_DIR = HERE / "seed_examples"
SEEDS_DIR = Path(__file__).resolve().parents[3] / "shared" / "seeds"

#: Each stored example and the dialect its platform writes it in.
EXPECTED_DIALECT = {
    # Seed 001 and 002 (Bolna); the "Complete Schema Structure" template is in both, identical.
    "function_name": "bolna",
    "get_product_details": "bolna",
    "save_feedback": "bolna",
    "check_order_status": "bolna",
    "get_account_balance": "bolna",
    "book_appointment": "bolna",
    "create_support_ticket": "bolna",
    "log_interaction": "bolna",
    "transfer_support": "bolna",
    # Seed 004 (Call2Me), inside the curl -d '...'.
    "get_order_status": "call2me",
}

EXAMPLE_FILES = sorted(EXAMPLES_DIR.glob("*.json"))


def _id(path: Path) -> str:
    return path.stem


def test_every_stored_example_is_registered() -> None:
    assert {p.stem for p in EXAMPLE_FILES} == set(EXPECTED_DIALECT)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=_id)
def test_example_loads_unchanged_with_zero_errors(path: Path) -> None:
    before = path.read_bytes()
    function = load_function(path)
    assert path.read_bytes() == before
    assert isinstance(function, Function)
    assert function.name == path.stem
    report = validate(json.loads(before.decode("utf-8")))
    assert report.dialect == EXPECTED_DIALECT[path.stem]
    assert report.errors == []
    assert report.ok
    assert report.function == function


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=_id)
def test_example_survives_a_round_trip_through_its_own_dialect(path: Path) -> None:
    function = load_function(path)
    dialect = EXPECTED_DIALECT[path.stem]
    doc, lost = dump(function, dialect)
    assert lost == []
    assert validate(doc, dialect).function == function
    native, native_lost = dump(function, "voicefn")
    assert native_lost == []
    assert load_function(native, "voicefn") == function


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=_id)
def test_example_fields_arrive_in_the_canonical_model(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    function = load_function(path)
    assert function.description == data["description"]
    assert function.parameters == data["parameters"]
    assert function.phase == "in_call"
    action = function.http
    if EXPECTED_DIALECT[path.stem] == "bolna":
        value = data["value"]
        assert action.method == value["method"]
        assert action.url == value["url"]
        assert action.param == value["param"]
        assert action.token == value.get("api_token")
        assert action.headers == (value.get("headers") or {})
        assert action.pre_call_webhook_param == value.get("pre_call_webhook_param")
        assert action.pre_call_webhook_url == value.get("pre_call_webhook_url")
        assert function.filler == data.get("pre_call_message")
    else:
        assert action.method == data["method"]
        assert action.url == data["url"]
        assert action.param is None  # Call2Me sends the arguments as they are
        assert action.timeout_ms == data["timeout_ms"]
        assert function.filler == data["speak_during_execution"]


def test_specific_seed_facts() -> None:
    """A few values read off the seed texts, to catch a field landing in the wrong place."""
    order = load_function(EXAMPLES_DIR / "get_order_status.json")
    assert order.http.timeout_ms == 4000
    assert order.http.method == "POST"
    assert order.filler == "Let me check that for you..."
    assert order.required == ["order_id"]
    transfer = load_function(EXAMPLES_DIR / "transfer_support.json")
    assert transfer.http.pre_call_webhook_url == "https://your-api.com/pre-transfer-hook"
    assert transfer.http.pre_call_webhook_param == {
        "transfer_reason": "%(reason)s",
        "channel": "voice",
    }
    assert transfer.http.api_token is None
    assert transfer.filler is None
    balance = load_function(EXAMPLES_DIR / "get_account_balance.json")
    assert balance.http.token == "Bearer fin_api_key_001"
    assert balance.http.headers == {"X-Request-Source": "voice-agent"}
    appointment = load_function(EXAMPLES_DIR / "book_appointment.json")
    assert "reason" not in appointment.required
    assert appointment.required == ["patient_name", "preferred_date", "preferred_time"]


# ------------------------------------------------------------------ the seeds, when present

_FUNCTION_MARKERS = re.compile(r'"key"\s*:\s*"custom_task"|"speak_during_execution"\s*:')


def _seed_texts() -> dict[str, str]:
    if not SEEDS_DIR.is_dir():
        pytest.skip(f"platform docs not present at {SEEDS_DIR}")
    texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(SEEDS_DIR.glob("*.txt"))}
    if not texts:
        pytest.skip(f"no seed texts in {SEEDS_DIR}")
    return texts


def _function_objects(text: str) -> list[tuple[int, int, Any]]:
    """Every JSON object in ``text`` that is a platform function: (start, end, value)."""
    decoder = json.JSONDecoder()
    found = []
    i = text.find("{")
    while i >= 0:
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            i = text.find("{", i + 1)
            continue
        if isinstance(value, dict) and (
            value.get("key") == "custom_task" or "speak_during_execution" in value
        ):
            found.append((i, end, value))
            i = text.find("{", end)
        else:
            i = text.find("{", i + 1)
    return found


def test_every_seed_example_is_stored() -> None:
    stored = {p.read_text(encoding="utf-8") for p in EXAMPLE_FILES}
    missing = []
    total = 0
    for name, text in _seed_texts().items():
        objects = _function_objects(text)
        total += len(objects)
        spans = [(start, end) for start, end, _ in objects]
        for start, end, value in objects:
            if text[start:end] not in stored:
                missing.append(f"{name}@{start}: {value.get('name')}")
        # A function example that is not valid JSON would escape the scan above: every marker on
        # a line of its own (JSON, not prose) must lie inside one of the parsed examples.
        for m in _FUNCTION_MARKERS.finditer(text):
            line_start = text.rfind("\n", 0, m.start()) + 1
            if text[line_start : m.start()].strip():
                continue  # the marker is quoted in prose
            if not any(start <= m.start() < end for start, end in spans):
                missing.append(f"{name}@{m.start()}: unparsed example near {m.group(0)!r}")
    assert missing == [], "seed examples not in tests/dialects/seed_examples/: " + "; ".join(
        missing
    )
    assert total >= len(EXAMPLE_FILES)


def test_every_stored_example_is_verbatim_in_a_seed() -> None:
    texts = _seed_texts()
    for path in EXAMPLE_FILES:
        content = path.read_text(encoding="utf-8")
        assert any(content in text for text in texts.values()), path.name
