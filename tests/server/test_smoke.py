from __future__ import annotations

import httpx
from api_helpers import create_agent


def test_starts_and_answers(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    agent = create_agent(api)
    assert agent["id"] == "agent_abc123"
