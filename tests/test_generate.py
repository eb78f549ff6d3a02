"""`voicefn generate`: a scripted LLM writes code, voicefn checks it, runs it once in the real
sandbox against a real local API, and feeds problems back."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from voicefn.cli import app
from voicefn.generate import extract
from voicefn.testing import ScriptedLLM, text

runner = CliRunner()

BROKEN = """```python
def check_stock(product_id: str) -> dict:
    return {"status": "success"}
```
```json
{"product_id": "P-1"}
```"""


def good(url: str) -> str:
    return f'''Here you go:
```python
async def check_stock(ctx: RunContext, product_id: str) -> dict:
    """Check product availability when the caller asks if an item is in stock.

    Args:
        product_id: The product identifier
    """
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            r = await client.get("{url}/echo", params={{"product_id": product_id}})
        logger.info("inventory answered %s", r.status_code)
        return {{"status": "success", "asked": r.json()["query"]["product_id"][0]}}
    except httpx.HTTPError as e:
        return {{"status": "error", "message": str(e)}}
```
```json
{{"product_id": "P-42"}}
```'''


def crashing() -> str:
    return '''```python
async def check_stock(ctx: RunContext, product_id: str) -> dict:
    """Check stock.

    Args:
        product_id: The product identifier
    """
    return {"status": "success", "n": 1 / 0}
```'''


def sandbox_available() -> bool:
    from voicefn.sandbox.python import check_host

    return check_host().full


needs_sandbox = pytest.mark.skipif(
    "not sandbox_available()", reason="needs bubblewrap + user namespaces"
)


def test_extract_code_and_sample_arguments():
    code, sample = extract(BROKEN, "python")
    assert code is not None
    assert code.startswith("def check_stock")
    assert sample == {"product_id": "P-1"}
    assert extract("no code here", "python") == (None, None)


@needs_sandbox
def test_generate_retries_after_a_broken_first_attempt(server):
    with ScriptedLLM() as llm:
        llm.push(text(BROKEN), text(good(server.url)))
        res = runner.invoke(
            app,
            [
                "generate",
                "Check product availability by product_id",
                "--lang",
                "python",
                "--model",
                "scripted",
                "--base-url",
                llm.base_url,
                "--allow-private-network",
                "--json",
            ],
        )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["ok"] is True
    assert len(out["attempts"]) == 2
    assert any("async def" in p for p in out["attempts"][0]["problems"])
    assert out["result"] == {"status": "success", "asked": "P-42"}
    assert out["arguments"] == {"product_id": "P-42"}
    assert server.received[-1].query == {"product_id": ["P-42"]}
    feedback = llm.requests[1]["messages"][-1]["content"]
    assert "must be 'async def'" in feedback


@needs_sandbox
def test_generate_feeds_a_runtime_error_back(server, tmp_path):
    with ScriptedLLM() as llm:
        llm.push(text(crashing()), text(good(server.url)))
        target = tmp_path / "check_stock.py"
        res = runner.invoke(
            app,
            [
                "generate",
                "Check stock",
                "--args",
                '{"product_id": "X"}',
                "--model",
                "scripted",
                "--base-url",
                llm.base_url,
                "--allow-private-network",
                "--out",
                str(target),
            ],
        )
    assert res.exit_code == 0, res.output
    assert "ZeroDivisionError" in llm.requests[1]["messages"][-1]["content"]
    assert "Test it with these arguments" in llm.requests[0]["messages"][1]["content"]
    assert target.read_text().startswith("async def check_stock")
    assert '"asked": "X"' in res.stdout


def test_generate_gives_up_after_max_attempts():
    with ScriptedLLM() as llm:
        llm.push(text(BROKEN), text("still no code"))
        res = runner.invoke(
            app,
            ["generate", "x", "--model", "m", "--base-url", llm.base_url, "--max-attempts", "2"],
        )
    assert res.exit_code == 1
    assert "rejected" in res.stdout
    assert "no ```python code block" in res.stdout
    assert len(llm.requests) == 2
