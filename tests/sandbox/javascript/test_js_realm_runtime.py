"""realm.js, the runtime inside a realm-tier job's V8 context, proved on its own.

``realm_harness.js`` plays the outer side (what ``runtime/realm_worker.js`` does in a Worker):
a fresh ``vm.createContext(DONT_CONTEXTIFY)`` per job, realm.js's ``setup`` run in it with the
vendored libraries as expressions, only strings passed in, the realm's queue pumped on its
doorbell (``Atomics.waitAsync``), fetches answered with canned replies, timers with real
``setTimeout``. It prints one JSON line per scenario; each test here checks one.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from voicefn.sandbox.javascript._host import find_deno

HARNESS = Path(__file__).with_name("realm_harness.js")

Scenario = dict[str, Any]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Scenario]:
    """Every scenario's JSON line, by name (one harness run for the module)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "NO_COLOR": "1",
        "DENO_NO_UPDATE_CHECK": "1",
        "DENO_DIR": str(tmp_path_factory.mktemp("deno-dir")),
    }
    done = subprocess.run(
        [find_deno(None), "run", "--allow-read", str(HARNESS)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, Scenario] = {}
    for line in done.stdout.splitlines():
        item = json.loads(line)
        out[item.pop("name")] = item
    return out


def scenario(runs: dict[str, Scenario], name: str) -> Scenario:
    item = runs[name]
    assert "harness_error" not in item, item.get("harness_error")
    return item


def messages_of(item: Scenario, kind: str) -> list[Scenario]:
    return [m for m in item["others"] if m["t"] == kind]


def test_a_trivial_job_posts_one_done_message(runs: dict[str, Scenario]) -> None:
    item = scenario(runs, "trivial")
    assert item["done"] == {"t": "done", "ok": True, "json": '{"x":2}'}
    assert item["others"] == []


def test_job_errors_read_as_in_a_worker(runs: dict[str, Scenario]) -> None:
    item = scenario(runs, "errors")
    exception = {"t": "done", "ok": False, "error": "exception"}
    assert item["bad_entry"] == {
        **exception,
        "detail": "the entrypoint is not a JavaScript identifier",
    }
    assert item["missing"] == {**exception, "detail": "no function named main is defined"}
    assert item["exports"] == {"t": "done", "ok": True, "json": "42"}
    assert item["throws"] == {**exception, "detail": "TypeError: bad thing"}
    assert item["throws_string"] == {**exception, "detail": "plain"}
    assert item["syntax"]["detail"].startswith("SyntaxError: ")
    assert item["bigint"] == {
        "t": "done",
        "ok": False,
        "error": "invalid_output",
        "detail": "the return value is not JSON-serializable: TypeError: Do not know how to serialize a BigInt",
    }
    assert item["func"]["detail"] == "the return value (function) is not JSON-serializable"
    assert item["too_big"] == {
        "t": "done",
        "ok": False,
        "error": "invalid_output",
        "detail": "the return value is larger than 10 bytes",
        "layer": "output-limit",
    }


def test_console_values_go_out_as_trees(runs: dict[str, Scenario]) -> None:
    item = scenario(runs, "console_trees")
    assert item["result"] == {"called": False}  # the getter was never called
    logs = item["logs"]
    first = [p.get("v", p.get("s")) for p in logs[0]["parts"]]
    assert logs[0]["level"] == "log"
    assert first[0] == "text"
    assert first[1] == {
        "t": "obj", "id": 1, "cls": None, "nullproto": False, "more": 0,
        "entries": [["a", {"t": "num", "v": "1"}],
                    ["b", {"t": "arr", "id": 2, "items": [{"t": "num", "v": "1"}, {"t": "num", "v": "2"}], "more": 0}]],
    }  # fmt: skip
    array = first[2]
    assert array["items"][2] == {"t": "hole"}  # a hole (Deno prints "<1 empty item>")
    assert array["items"][4] == {"t": "cyc", "id": array["id"]}
    assert first[3]["entries"][1] == ["self", {"t": "cyc", "id": first[3]["id"]}]
    assert first[4] == {
        "t": "map",
        "id": 5,
        "entries": [[{"t": "num", "v": "1"}, {"t": "str", "v": "one"}]],
        "more": 0,
    }
    assert first[5] == {"t": "set", "id": 6, "items": [{"t": "str", "v": "s"}], "more": 0}
    assert first[6] == {"t": "date", "id": 7, "v": 0}
    assert first[7]["t"] == "err"
    assert first[7]["name"] == "RangeError"
    assert first[7]["message"] == "boom"
    assert first[7]["stack"].startswith("RangeError: boom\n    at main")
    assert first[8]["cls"] == "Foo"
    assert first[8]["entries"] == [["a", {"t": "num", "v": "1"}]]
    assert first[9]["entries"][1] == ["secret", {"t": "acc", "get": True, "set": False}]
    deep = first[10]
    for _ in range(5):
        deep = deep["entries"][0][1]
    assert deep["entries"][0][1] == {"t": "cut", "kind": "obj", "cls": None}

    warn = [p["v"] for p in logs[1]["parts"]]
    assert logs[1]["level"] == "warn"
    assert warn[:8] == [
        {"t": "num", "v": "NaN"}, {"t": "num", "v": "-0"}, {"t": "num", "v": "Infinity"}, {"t": "big", "v": "10"},
        {"t": "sym", "v": "sy"}, {"t": "undef"}, {"t": "null"}, {"t": "bool", "v": True},
    ]  # fmt: skip
    assert (warn[8]["t"], warn[8]["src"], warn[8]["flags"]) == ("re", "re+", "gi")
    assert warn[9]["nullproto"] is True
    kinds = [(p["v"]["name"], p["v"]["kind"]) for p in logs[2]["parts"]]
    assert kinds == [
        ("named", "function"),
        ("K", "class"),
        ("", "async"),
        ("gen", "generator"),
        ("ag", "asyncgenerator"),
    ]
    big = logs[3]["parts"]
    assert len(big[0]["v"]["items"]) == 100
    assert big[0]["v"]["more"] == 50
    assert big[1] == {"s": "y" * 10000}
    assert {k: v for k, v in logs[4].items() if k != "end"} == {
        "t": "log",
        "level": "error",
        "parts": [{"s": "Assertion failed"}, {"s": "shown"}],
    }
    # each line also went to the realm's log buffer (for the host, if the job spins): `end` is
    # where it ends there, so the ends grow line by line
    ends = [m["end"] for m in logs]
    assert ends[0] > 0, ends
    assert all(a < b for a, b in itertools.pairwise(ends)), ends
    assert [(m["level"], m["parts"][0].get("s")) for m in logs[5:9]] == [
        ("debug", "traced"), ("log", None), ("log", None), ("debug", "dbg"),
    ]  # fmt: skip
    # a revoked Proxy and a throwing trap: described, never thrown out of console.log
    assert logs[9]["parts"] == [{"v": {"t": "str", "v": "[unprintable]"}}] * 2
    # 10,000 values in one call: about 2,000 nodes go out, the rest are cut or counted
    bounded = json.dumps(logs[10])
    assert 1900 < bounded.count('"t": ') < 2200
    outer = logs[10]["parts"][0]["v"]
    assert len(outer["items"]) < 100
    assert outer["more"] == 100 - len(outer["items"])
    assert len(logs) == 11  # group/time/count are no-ops


def test_custom_inspectors_run_in_the_realm_with_its_own_arguments(
    runs: dict[str, Scenario],
) -> None:
    item = scenario(runs, "console_custom")
    assert item["done"]["ok"] is True, item["done"]
    # [this is the value, inspect and options are the realm's, depth, what inspect gave]
    assert item["result"] == {
        "calls": [[True, True, 0, '{ a: "x", b: [ 1, -0, 10n ] }'], [True, True, 3, None]],
        "deepCalls": 0,  # below the depth Deno prints, never called (Deno does not call it)
    }
    # what they got was kept on the realm's global: nothing of it (or anything else) is outer
    assert item["walk"]["badProto"] == [], item["walk"]
    assert item["walk"]["badCtor"] == [], item["walk"]
    [log] = item["logs"]
    parts = [p.get("v", p.get("s")) for p in log["parts"]]
    assert parts[0] == {"t": "custom", "v": "deno-text"}
    assert parts[1]["entries"] == [["nested", {"t": "custom", "v": "node-text"}]]
    assert parts[3]["t"] == "throws"
    assert (parts[3]["err"]["name"], parts[3]["err"]["message"]) == (
        "RangeError",
        "inspector threw",
    )
    assert parts[4] == "after"


def test_axios_get_goes_through_the_fetch_adapter(runs: dict[str, Scenario]) -> None:
    item = scenario(runs, "axios_get")
    assert item["result"] == {
        "status": 200, "statusText": "", "data": {"items": [1, 2]}, "ct": "application/json", "xh": "v",
    }  # fmt: skip
    # one request, and evaluating axios (it feature-detects FormData, ReadableStream, ...) sent
    # nothing back to a Worker
    (fetch,) = item["others"]
    assert fetch == {
        "t": "fetch", "rid": 1, "url": "https://api.example.com/items?q=1", "method": "GET",
        "headers": [["accept", "application/json, text/plain, */*"], ["user-agent", "axios/1.21.1"], ["x-test", "yes"]],
        "body": None,
    }  # fmt: skip


def test_axios_post_sends_the_json_text_and_content_type(runs: dict[str, Scenario]) -> None:
    item = scenario(runs, "axios_post")
    assert item["result"] == {"created": True}
    (fetch,) = item["fetches"]
    assert fetch["method"] == "POST"
    assert fetch["body"] == {"text": '{"a":1}'}
    assert ["content-type", "application/json"] in fetch["headers"]


def test_axios_rejects_a_404_with_its_response(runs: dict[str, Scenario]) -> None:
    assert scenario(runs, "axios_404")["result"] == {
        "status": 404, "data": {"error": "nope"}, "message": "Request failed with status code 404", "code": "ERR_BAD_REQUEST",
    }  # fmt: skip


def test_a_rejected_fetch_is_an_axios_network_error(runs: dict[str, Scenario]) -> None:
    assert scenario(runs, "axios_network_error")["result"] == {
        "message": "Network Error", "code": "ERR_NETWORK", "cause": "TypeError: fetch failed: egress denied",
    }  # fmt: skip


def test_aborting_rejects_pending_and_refuses_aborted_requests(runs: dict[str, Scenario]) -> None:
    item = scenario(runs, "abort")
    assert item["result"] == {
        "fetch": "AbortError: The signal has been aborted", "pre": "why", "axios": "CanceledError: ERR_CANCELED",
    }  # fmt: skip
    # the request with an already aborted signal never left the realm
    assert item["fetches"] == ["https://api.example.com/slow", "https://api.example.com/slow2"]


def test_timers_fire_in_order_and_clear(runs: dict[str, Scenario]) -> None:
    item = scenario(runs, "timers")
    assert item["result"] == ["soon:ab", "tick1", "tick2", "tick3", "late"]
    arms = [(m["t"], m["id"], m.get("ms")) for m in item["timers"]]
    assert arms[:4] == [("timer", 1, 20), ("timer", 2, 0), ("timer", 3, 0), ("clear", 3, None)]
    # the interval re-arms after each tick until it clears itself
    assert arms[4:8] == [("timer", 4, 0), ("timer", 4, 0), ("timer", 4, 0), ("clear", 4, None)]
    assert [ms for _, _, ms in arms[8:]] == [0, 0, 7]  # -5 and NaN are 0, "7" is 7


def test_lodash_and_moment_are_lazy_and_usable(runs: dict[str, Scenario]) -> None:
    item = scenario(runs, "libraries")
    assert item["result"] == {
        "before": {"axios": "function", "moment": "function", "_": "function"},
        "after": {"moment": True, "_": True, "axiosStillLazy": "function"},
        "chunk": [[1, 2], [3]], "year": "1970-01-01", "version": "4.18.1", "same": True,
    }  # fmt: skip
    assert item["others"] == []


def test_prepare_stack_trace_is_fixed_and_late_runners_are_gone(runs: dict[str, Scenario]) -> None:
    item = scenario(runs, "hardening")
    result = item["result"]
    assert result["define"] == "TypeError"
    assert result["still"] is True
    assert result["stack"] == "string"
    # waitAsync, FinalizationRegistry, WebAssembly: gone; reading one hands the job to a Worker
    names = ["Atomics.waitAsync", "FinalizationRegistry", "WebAssembly"]
    assert result["absent"] == [f"{name} is not available here" for name in names]
    assert result["owned"] == [True, True]  # the realm's traps, not the intrinsics
    assert [m for m in item["others"] if m["t"] == "worker_only"] == [
        {"t": "worker_only", "name": name} for name in names
    ]
    assert result["present"] == ["function", "function", "object", "function"]


def test_reading_a_worker_only_global_queues_worker_only(runs: dict[str, Scenario]) -> None:
    item = scenario(runs, "worker_only")
    assert item["result"] == {
        "url": "URL is not available here",
        "deno": 5,
    }  # assigning one makes it plain
    assert item["others"] == [{"t": "worker_only", "name": "URL"}]
    # a library that really uses one (axios parses an IPv6 URL with a port) reports it the same way
    library = scenario(runs, "worker_only_library")
    assert library["result"] == "URL is not available here"
    assert library["others"] == [{"t": "worker_only", "name": "URL"}]


def test_web_classes(runs: dict[str, Scenario]) -> None:
    item = scenario(runs, "web_classes")
    r = item["result"]
    assert r["response"] == [
        201,
        True,
        "",
        "default",
        "",
        False,
        None,
        "text/plain;charset=UTF-8",
        False,
    ]
    assert r["text"] == "hé"
    assert r["bytes"] == [104, 195, 169]
    assert r["again"] == "TypeError: Body already consumed"
    assert r["cloneUsed"] == "Body is unusable"
    assert r["nullStatus"] == "TypeError: Response with null body status cannot have body"
    assert r["badStatus"] == "RangeError"
    assert r["decoded"] == "\ufffd\ufffdA"
    assert r["json"] == {"a": [1]}
    assert r["headers"] == [["a", "2"], ["b", "1, 3"], ["set-cookie", "x"], ["set-cookie", "y"]]
    assert r["headersMisc"] == [
        "1, 3",
        True,
        False,
        "[object Headers]",
        "a,b,set-cookie,set-cookie",
    ]
    assert r["badName"] == 'TypeError: Invalid header name: "a b"'
    assert r["request"] == ["POST", "https://x.test/p", "hi", "[object Request]"]
    assert r["getBody"] == "Request with GET/HEAD method cannot have body"  # as Deno
    assert r["signal"] == ["AbortError", "The signal has been aborted"]
    assert r["timeout"] == [True, "TimeoutError"]
    assert r["events"] == ["onabort", "abort"]  # once, though abort() ran twice
    assert r["thrown"] == "AbortError"
    assert r["illegal"] == "Illegal constructor"
    assert r["fetched"] == [
        "default",
        "https://x.test/b",
        200,
        {"ok": True},
    ]  # worker.js builds it with new Response()
    (fetch,) = item["fetches"]
    assert fetch["method"] == "PUT"
    assert fetch["body"] == {"b64": "AQA="}


def test_a_job_that_breaks_prototypes_does_not_break_the_messages(
    runs: dict[str, Scenario],
) -> None:
    item = scenario(runs, "pollution")
    assert item["done"] == {"t": "done", "ok": True, "json": "7"}
    log, timer = item["others"]
    assert log["parts"][0]["v"]["entries"] == [["a", {"t": "num", "v": "1"}]]
    assert log["parts"][1]["v"]["items"] == [{"t": "num", "v": "2"}]
    assert timer == {"t": "timer", "id": 1, "ms": 1}


def test_control_takes_anything_and_never_throws(runs: dict[str, Scenario]) -> None:
    item = scenario(runs, "control")
    # bogus op, bad JSON, unknown timer, unknown rid, a second start: nothing; take: "[]"
    assert item["values"] == ["undefined"] * 5 + ["[]", "undefined was thrown"]
    assert item["threw"] is False


def test_a_timer_callbacks_error_is_reported_uncaught(runs: dict[str, Scenario]) -> None:
    assert scenario(runs, "uncaught")["others"] == [
        {"t": "uncaught", "err": "SyntaxError: in timer"}
    ]


def test_nothing_reachable_in_the_realm_is_of_another_realm(runs: dict[str, Scenario]) -> None:
    item = scenario(runs, "graph_walk")
    assert item["result"] == 12
    walk = item["walk"]
    assert walk["badProto"] == []
    assert walk["badCtor"] == []
    assert walk["objects"] > 2000
    assert walk["functions"] > 1000
    controls = scenario(runs, "walk_controls")
    planted_proto, planted_ctor = controls["planted"]
    assert "globalThis.planted" in planted_proto
    assert "globalThis.plantedFn" in planted_ctor
    bare_proto, _ = controls["bare"]
    assert "globalThis.Temporal" in bare_proto  # why setup touches every global first


def test_btoa_and_atob_are_exact_or_hand_the_job_to_a_worker(runs: dict[str, Scenario]) -> None:
    assert scenario(runs, "base64")["result"] == ["aGnp", "", "hi", "hi", ""]
    for label, name in (("btoa", "btoa"), ("atob", "atob"), ("atob_char", "atob")):
        item = scenario(runs, f"base64_{label}")
        assert item["result"] == f"{name} is not available here"
        assert item["others"] == [{"t": "worker_only", "name": name}]
