"""Sandboxed code's HTTP, as the engine sends it: bombs, smuggling and pools between tenants.

The code runs in the real Python and JavaScript sandboxes; the attacks' servers are real
sockets on 127.0.0.1. Each test names the layer that stops the attack: ``decoding``,
``normalisation`` (the engine frames the code's request itself) or ``tenant pools``.
"""

from __future__ import annotations

import json
import tracemalloc
import zlib

import pytest

from voicefn import CallContext, Executor, load_function
from voicefn.sandbox.python import check_host

from servers import RawRequest, raw_response, running_raw_server

pytestmark = pytest.mark.skipif(not check_host().full, reason="needs bubblewrap + user namespaces")

SMUGGLED = b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def python_function(tmp_path, body: str, name: str = "probe"):
    path = tmp_path / f"{name}.py"
    path.write_text(
        f'''
async def {name}(ctx: RunContext, url: str) -> dict:
    """Fetch a URL for the test.

    Args:
        url: where
    """
{body}
'''
    )
    return load_function(path)


def js_function(tmp_path, body: str, name: str = "probe"):
    path = tmp_path / f"{name}.js"
    path.write_text(f"async function {name}(data) {{\n{body}\n}}\n")
    return load_function(path)


def bomb() -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    inner = b"".join(c.compress(bytes(1 << 20)) for _ in range(256)) + c.flush()
    c = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    return raw_response(c.compress(inner) + c.flush(), headers={"Content-Encoding": "gzip, gzip"})


def answer(request: RawRequest) -> bytes:
    payload = {"you_asked": request.target, "host": request.headers.get("host")}
    return raw_response(json.dumps(payload).encode(), headers={"Content-Type": "application/json"})


PY_FETCH = """
    try:
        async with httpx.AsyncClient(timeout=20) as client:
            r = await client.get(url)
        return {"status": "success", "size": len(r.content)}
    except Exception as exc:
        return {"status": "error", "error": str(exc)}
"""

JS_FETCH = """
  try {
    const r = await fetch(data.url);
    const text = await r.text();
    return { status: "success", size: text.length };
  } catch (e) {
    return { status: "error", error: String(e) };
  }
"""


@pytest.mark.parametrize("language", ["python", "javascript"])
async def test_a_bomb_fetched_from_sandboxed_code_stops_at_the_budget(tmp_path, language):
    """layer: decoding. Before: 69 MB -> 2.1 GB RSS in the engine, loop blocked ~6 s."""
    body = bomb()
    fn = (
        python_function(tmp_path, PY_FETCH)
        if language == "python"
        else js_function(tmp_path, JS_FETCH)
    )
    with running_raw_server(lambda _: body) as server:
        async with Executor(allow_private_network=True) as ex:
            await ex.run(fn, {"url": server.url}, CallContext(agent_id="warm"))  # start it
            tracemalloc.start()
            try:
                result = await ex.run(fn, {"url": server.url}, CallContext(agent_id="a"))
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert result.ok, result.content
    out = json.loads(result.content)
    assert out["status"] == "error"
    assert "too_large" in out["error"]
    assert peak < 8 << 20  # the 1 MiB budget plus base64 and frames; never the 256 MiB
    [record] = result.sandbox["http"]
    assert record["error"].startswith("too_large")


PY_SMUGGLE = """
    extra = await ctx.http.post(url + "/a", content=SMUGGLED, headers={
        "Content-Length": "5",
        "Transfer-Encoding": "chunked",
        "Host": "admin.internal",
        "Connection": "keep-alive",
        "Proxy-Authorization": "Basic eA==",
        "X-Kept": "yes",
    })
    return {"status": "success", "answer": extra.json()}
""".replace("SMUGGLED", repr(SMUGGLED))

PY_PLAIN = """
    r = await ctx.http.get(url + "/b")
    return {"status": "success", "answer": r.json()}
"""


async def test_a_smuggled_request_cannot_reach_another_tenants_response(tmp_path):
    """layers: normalisation (framing headers dropped, length set by the engine, Host from the
    URL) and tenant pools (B never reads from A's connection)."""
    attacker = python_function(tmp_path, PY_SMUGGLE, "attack")
    bystander = python_function(tmp_path, PY_PLAIN, "plain")
    with running_raw_server(answer) as server:
        async with Executor(allow=["127.0.0.1"]) as ex:
            a = await ex.run(attacker, {"url": server.url}, CallContext(agent_id="tenant-A"))
            b = await ex.run(bystander, {"url": server.url}, CallContext(agent_id="tenant-B"))
            a2 = await ex.run(attacker, {"url": server.url}, CallContext(agent_id="tenant-A"))
    assert a.ok, a.content
    assert b.ok, b.content
    assert json.loads(b.content)["answer"]["you_asked"] == "/b"
    first, second, third = server.requests
    assert [r.target for r in server.requests] == ["/a", "/b", "/a"]  # nothing smuggled
    assert first.body == SMUGGLED
    assert first.headers["content-length"] == str(len(SMUGGLED))
    assert "transfer-encoding" not in first.headers
    assert "proxy-authorization" not in first.headers
    assert first.headers["host"] == f"127.0.0.1:{server.port}"
    assert first.headers["x-kept"] == "yes"
    assert second.connection != first.connection  # tenant B has its own pool
    assert third.connection == first.connection  # tenant A's own pool is still reused
    assert a2.ok
    dropped = a.sandbox["http"][0]["dropped_headers"]
    assert sorted(h.lower() for h in dropped) == [
        "connection",
        "content-length",
        "host",
        "proxy-authorization",
        "transfer-encoding",
    ]


JS_SMUGGLE = """
  const r = await axios.post(data.url + "/a", "SMUGGLED", {
    headers: { "Transfer-Encoding": "chunked", "Host": "admin.internal", "Upgrade": "h2c",
               "TE": "trailers", "Keep-Alive": "timeout=99", "X-Kept": "yes",
               "Content-Type": "text/plain" },
  });
  return { status: "success", answer: r.data };
""".replace("SMUGGLED", SMUGGLED.decode().replace("\r", "\\r").replace("\n", "\\n"))


async def test_javascript_requests_are_normalised_too(tmp_path):
    """layer: normalisation, for fetch/axios in the JavaScript sandbox."""
    fn = js_function(tmp_path, JS_SMUGGLE)
    with running_raw_server(answer) as server:
        async with Executor(allow=["127.0.0.1"]) as ex:
            result = await ex.run(fn, {"url": server.url}, CallContext(agent_id="tenant-A"))
    assert result.ok, result.content
    [request] = server.requests
    assert request.body == SMUGGLED
    assert request.headers["host"] == f"127.0.0.1:{server.port}"
    for name in ("transfer-encoding", "upgrade", "te", "keep-alive"):
        assert name not in request.headers
    assert request.headers["x-kept"] == "yes"
    assert json.loads(result.content)["answer"]["you_asked"] == "/a"


async def test_functions_without_an_agent_do_not_share_a_tenant(tmp_path):
    """layer: tenant pools. Before: every function without agent_id shared tenant "default"."""
    one = python_function(tmp_path, PY_PLAIN, "one")
    two = python_function(tmp_path, PY_PLAIN, "two")
    with running_raw_server(answer) as server:
        async with Executor(allow=["127.0.0.1"]) as ex:
            for fn in (one, two, one):
                assert (await ex.run(fn, {"url": server.url})).ok
    first, second, third = server.requests
    assert first.connection != second.connection
    assert third.connection == first.connection


PY_QUERY = """
    r = await ctx.http.get(url + "/q?order=ORD-1&api_key=sk_live_1234&sig=abcd")
    return {"status": "success", "answer": r.json()}
"""

JS_QUERY = """
  const r = await fetch(data.url + "/q?order=ORD-1&api_key=sk_live_1234&sig=abcd");
  return { status: "success", answer: await r.json() };
"""


@pytest.mark.parametrize("language", ["python", "javascript"])
async def test_secret_query_values_are_sent_but_never_recorded(tmp_path, language):
    """The request the code made is recorded (API, dashboard, invoke) with secret-looking query
    values hidden; the server still gets them."""
    fn = (
        python_function(tmp_path, PY_QUERY)
        if language == "python"
        else js_function(tmp_path, JS_QUERY)
    )
    with running_raw_server(answer) as server:
        async with Executor(allow=["127.0.0.1"]) as ex:
            result = await ex.run(fn, {"url": server.url}, CallContext(agent_id="q"))
    assert result.ok, result.content
    assert json.loads(result.content)["answer"]["you_asked"] == (
        "/q?order=ORD-1&api_key=sk_live_1234&sig=abcd"
    )
    [record] = result.sandbox["http"]
    assert record["url"].endswith("/q?order=ORD-1&api_key=[redacted]&sig=[redacted]")
    assert "sk_live_1234" not in json.dumps(result.sandbox)
