"""Python functions end to end: loaded from source, checked statically, run in the real sandbox
by the Executor, their HTTP going out through the engine's egress policy."""

from __future__ import annotations

import json

import pytest

from voicefn import CallContext, Executor, load_function
from voicefn.sandbox.python import check_host

pytestmark = pytest.mark.skipif(not check_host().full, reason="needs bubblewrap + user namespaces")

SOURCE = '''
__voicefn__ = {"filler": "Let me check our stock."}


async def check_stock(ctx: RunContext, product_id: str, quantity: int = 1, note: str | None = None) -> dict:
    """Check product availability when the caller asks if an item is in stock.

    Args:
        product_id: The product identifier, e.g. P-42
        quantity: How many the caller wants
        note: Anything else the caller said
    """
    logger.info("checking %s for call %s", product_id, ctx.call.call_sid)
    async with httpx.AsyncClient(timeout=5.0) as client:
        r = await client.get("URL/echo", params={"p": product_id, "q": quantity})
    return {"status": "success", "query": r.json()["query"], "customer": ctx.variables.get("customer_name"), "note": note}
'''


def stock_function(tmp_path, url: str):
    path = tmp_path / "check_stock.py"
    path.write_text(SOURCE.replace("URL", url))
    return load_function(path)


def test_source_file_becomes_a_function(tmp_path):
    fn = stock_function(tmp_path, "http://127.0.0.1:1")
    assert fn.name == "check_stock"
    assert fn.filler == "Let me check our stock."
    assert (
        fn.description == "Check product availability when the caller asks if an item is in stock."
    )
    assert fn.parameters["required"] == ["product_id"]
    assert fn.parameters["properties"]["quantity"]["default"] == 1
    assert fn.action.type == "python"


async def test_python_function_runs_in_the_sandbox_and_calls_an_api(tmp_path, server):
    fn = stock_function(tmp_path, server.url)
    ctx = CallContext(call_sid="CA1", variables={"customer_name": "Ana"})
    async with Executor(allow_private_network=True) as ex:
        result = await ex.run(fn, '{"product_id": "P-42", "quantity": "2"}', ctx)
    assert result.ok, result.content
    assert json.loads(result.content) == {
        "status": "success",
        "query": {"p": ["P-42"], "q": ["2"]},
        "customer": "Ana",
        "note": None,
    }
    assert server.received[-1].path == "/echo"
    assert result.logs[0]["message"] == "checking P-42 for call CA1"
    assert result.sandbox is not None
    assert result.sandbox["mode"] == "isolated"
    assert result.sandbox["http"][0]["status"] == 200


async def test_python_functions_http_obeys_the_egress_policy(tmp_path, server):
    fn = stock_function(tmp_path, server.url)
    async with Executor() as ex:  # default policy: loopback refused
        result = await ex.run(fn, {"product_id": "P-1"})
    assert not result.ok
    assert result.data["error"] == "function_failed"
    assert "egress policy" in result.data["detail"]
    assert "loopback" in result.data["detail"]
    assert server.received == []


async def test_missing_argument_is_caught_before_the_sandbox(tmp_path, server):
    fn = stock_function(tmp_path, server.url)
    async with Executor(allow_private_network=True) as ex:
        result = await ex.run(fn, {})
    assert result.error == "missing_arguments"
    assert "product_id (The product identifier, e.g. P-42)" in result.content
    assert result.sandbox is None


async def test_a_crash_in_customer_code_is_a_result_and_the_next_call_works(tmp_path, server):
    bad = tmp_path / "boom.py"
    bad.write_text(
        "async def boom(ctx: RunContext, n: int) -> dict:\n"
        '    """Divide.\n\n    Args:\n        n: divisor\n    """\n'
        '    return {"status": "success", "x": 1 / n}\n'
    )
    fn = load_function(bad)
    async with Executor(allow_private_network=True) as ex:
        failed = await ex.run(fn, {"n": 0})
        fine = await ex.run(fn, {"n": 4})
    assert failed.data["reason"] == "exception"
    assert "ZeroDivisionError" in failed.data["detail"]
    assert fine.ok
    assert json.loads(fine.content) == {"status": "success", "x": 0.25}


JS_SOURCE = """
async function pushToCrm(data) {
  const followUp = moment.utc("2026-11-22T10:00:00Z").add(3, "days").format("YYYY-MM-DD");
  const res = await axios.post("URL/echo", {
    phone: _.get(data, "call.from_number"),
    outcome: _.get(data, "variables.outcome", "unknown"),
    follow_up: followUp,
  });
  console.log("crm answered", res.status);
  return { status: "success", sent: res.data.json };
}
"""


async def test_javascript_post_call_function_with_axios_moment_lodash(tmp_path, server):
    path = tmp_path / "crm.js"
    path.write_text(JS_SOURCE.replace("URL", server.url))
    fn = load_function(path)
    assert (fn.name, fn.phase, fn.action.type) == ("pushToCrm", "post_call", "javascript")
    ctx = CallContext(call_sid="CA9", from_number="+15550001", variables={"outcome": "booked"})
    async with Executor(allow_private_network=True) as ex, Executor() as strict:
        result = await ex.run(fn, {}, ctx)
        blocked = await strict.run(fn, {}, ctx)  # default policy: loopback refused
    assert result.ok, result.content
    sent = {"phone": "+15550001", "outcome": "booked", "follow_up": "2026-11-25"}
    assert json.loads(result.content) == {"status": "success", "sent": sent}
    assert server.received[0].json == sent
    assert result.logs[0]["message"] == "crm answered 200"
    assert not blocked.ok
    assert blocked.sandbox is not None
    assert blocked.sandbox["stopped_by"] == "egress-policy"
    assert len(server.received) == 1


async def test_unsafe_process_mode_serves_one_workspace_only(tmp_path):
    """It gives no isolation between tenants, so a second workspace's code is refused."""
    fn = load_function(
        {
            "name": "hello",
            "description": "Say hello.",
            "parameters": {"type": "object", "properties": {}},
            "action": {
                "type": "python",
                "code": 'async def hello(ctx: RunContext) -> dict:\n    """Hi."""\n'
                '    return {"status": "success"}\n',
            },
        }
    )
    async with Executor(sandbox_mode="unsafe-process") as ex:
        first = await ex.run(fn, {}, CallContext(workspace_id="acme", agent_id="a1"))
        same = await ex.run(fn, {}, CallContext(workspace_id="acme", agent_id="a2"))
        other = await ex.run(fn, {}, CallContext(workspace_id="globex", agent_id="a3"))
    assert first.ok, first.content
    assert same.ok, same.content
    assert not other.ok
    assert other.data["reason"] == "unavailable"
    assert "single workspace" in other.data["detail"]
