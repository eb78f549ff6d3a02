"""What the JavaScript sandbox tests' egress callables share: make the request a function asked
for with httpx (the engine's real egress applies its policy where these stand in for it) and
answer in the sandbox's reply shape (status, header pairs, base64 body)."""

from __future__ import annotations

import base64
from typing import Any

import httpx


async def forward(
    client: httpx.AsyncClient,
    request: dict[str, Any],
    *,
    url: str | None = None,
    drop_host: bool = False,
) -> dict[str, Any]:
    """Send ``request`` (to ``url`` instead of its own, if given); every response header, a
    repeated one once per value."""
    headers = [(k, v) for k, v in request["headers"] if not (drop_host and k.lower() == "host")]
    response = await client.request(
        request["method"],
        request["url"] if url is None else url,
        headers=headers,
        content=base64.b64decode(request["body"]),
    )
    return {
        "status": response.status_code,
        "headers": [[k, v] for k, v in response.headers.multi_items()],
        "body": base64.b64encode(response.content).decode(),
    }
