"""JavaScript settings and failures end to end, in the real sandbox: ``__voicefn__``'s
timeout_ms stops the function; an HTTP request that times out (to a real loopback server that
never answers) is ``reason: "timeout"``; Deno's ``--allow-*`` advice never reaches the user."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from voicefn import Executor, load_function
from voicefn.sandbox.python import check_host

pytestmark = pytest.mark.skipif(not check_host().full, reason="needs bubblewrap + user namespaces")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port whose connections are accepted by the kernel and never answered."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as server:
        yield server.getsockname()[1]


def js(tmp_path: Path, name: str, body: str, settings: str = "") -> object:
    path = tmp_path / f"{name}.js"
    path.write_text(f"{settings}\nasync function {name}(data) {{\n{body}\n}}\n")
    return load_function(path)


async def run(function: object) -> dict[str, object]:
    async with Executor(allow=["127.0.0.1"]) as ex:
        result = await ex.run(function, {}, tool_call_id="t")  # type: ignore[arg-type]
    assert isinstance(result.data, dict)
    return result.data


async def test_timeout_ms_in_voicefn_settings_stops_the_function(tmp_path: Path) -> None:
    fn = js(
        tmp_path,
        "waits",
        "  await new Promise(() => {});",  # never settles: only the deadline ends it
        "const __voicefn__ = { timeout_ms: 1000 };",
    )
    assert fn.action.timeout_ms == 1000  # type: ignore[attr-defined]
    data = await run(fn)
    assert data["reason"] == "timeout"
    assert data["detail"] == "the function did not finish within 1 s"


@pytest.mark.parametrize(
    "request_line",
    [
        "axios.get(URL, { timeout: 1500 })",
        "fetch(URL, { signal: AbortSignal.timeout(1500) })",
    ],
)
async def test_an_http_timeout_inside_the_limit_is_a_timeout(
    tmp_path: Path, silent_port: int, request_line: str
) -> None:
    url = f"http://127.0.0.1:{silent_port}/slow"
    fn = js(
        tmp_path,
        "asks",
        f"  const URL = {url!r};\n  const r = await {request_line};\n  return {{ s: r.status }};",
        "const __voicefn__ = { timeout_ms: 120000 };",  # generous: the request's own timeout ends it
    )
    data = await run(fn)
    assert data["reason"] == "timeout", data
    assert str(data["detail"]).startswith("an HTTP request timed out:")


async def test_the_engines_own_request_timeout_is_a_timeout(
    tmp_path: Path, silent_port: int
) -> None:
    url = f"http://127.0.0.1:{silent_port}/slow"
    fn = js(
        tmp_path,
        "plain",
        f"  const r = await fetch({url!r});\n  return {{ s: r.status }};",
        "const __voicefn__ = { timeout_ms: 120000 };",
    )
    data = await run(fn)
    assert data["reason"] == "timeout", data
    assert "no response within" in str(data["detail"])


async def test_deno_permission_advice_is_replaced_by_ours(tmp_path: Path) -> None:
    fn = js(tmp_path, "reads", '  return { t: await Deno.readTextFile("/etc/hostname") };')
    data = await run(fn)
    assert data["reason"] == "exception"
    assert "--allow" not in str(data["detail"])
    assert "no file access in the sandbox" in str(data["detail"])
