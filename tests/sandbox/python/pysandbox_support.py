"""Helpers for the Python sandbox tests (imported by name: the tests dirs have no __init__)."""

from __future__ import annotations

import base64
import textwrap
from typing import Any

import httpx

from voicefn.egress import EgressDenied, EgressPolicy, make_transport
from voicefn.sandbox.python import check_host

HOST = check_host()
SKIP_REASON = "the isolated Python sandbox is unavailable here:\n" + HOST.describe()


def fn(body: str, *, name: str = "f", params: str = "") -> str:
    """``async def f(ctx: RunContext{params}) -> dict:`` with ``body`` as its (dedented) body."""
    body = textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
    return f'async def {name}(ctx: RunContext{params}) -> dict:\n    """Test."""\n{body}\n'


async def refuse_all(request: dict[str, Any]) -> dict[str, Any]:
    return {"error": "no egress in this test"}


class HttpxEgress:
    """An egress callback like the engine's: one httpx client, everything untrusted.

    With ``policy`` the client is the project's policy-checked transport (the real
    :class:`voicefn.egress.EgressPolicy`); without, it is a plain client (for 127.0.0.1 test
    servers).
    """

    def __init__(self, policy: EgressPolicy | None = None) -> None:
        transport = make_transport(policy) if policy is not None else None
        self.client = httpx.AsyncClient(transport=transport, trust_env=False, timeout=5.0)
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(request)
        try:
            response = await self.client.request(
                request["method"],
                request["url"],
                headers=[(k, v) for k, v in request["headers"]],
                content=base64.b64decode(request["body"]),
            )
        except EgressDenied as exc:
            # like the engine's callback (voicefn.actions.code): says the policy refused it
            return {"error": f"refused by the egress policy: {exc.reason}", "denied": True}
        except httpx.HTTPError as exc:
            return {"error": f"request failed: {type(exc).__name__}"}
        return {
            "status": response.status_code,
            "headers": [list(h) for h in response.headers.multi_items()],
            "body": base64.b64encode(response.content).decode(),
        }

    async def aclose(self) -> None:
        await self.client.aclose()
