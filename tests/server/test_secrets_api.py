"""Secrets: encrypted at rest, write-only (masked), kept when written back masked, never logged,
exported only when asked."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_helpers import create_agent, database_text, echo_function
from live import Live

from voicefn.server.logs import JsonFormatter

TOKEN = "Bearer sk_live_51Hx9Qz7TopSecret"
API_KEY_HEADER = "key-9f8e7d6c5b4a"
CRM = "crm-tok-0a1b2c3d4e"


@pytest.fixture
def log_text() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("voicefn")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_secrets_are_write_only_encrypted_and_sent_only_to_the_function(
    live: Live, api: httpx.Client, server: Any, db_url: str, log_text: io.StringIO
) -> None:
    create_agent(api, variables={"crm_token": CRM, "region": "eu"})
    doc = echo_function(
        server.url,
        api_token=TOKEN,
        headers={"X-Api-Key": API_KEY_HEADER, "X-Region": "{region}", "X-Crm": "{crm_token}"},
    )
    created = api.post("/v1/agents/agent_abc123/functions", json=doc)
    assert created.status_code == 201, created.text
    shown = created.text + api.get("/v1/agents/agent_abc123").text
    for secret in (TOKEN, API_KEY_HEADER, CRM, "sk_live_51Hx9Qz7TopSecret"):
        assert secret not in shown
    action = created.json()["function"]["action"]
    assert action["api_token"] == "[secret]"
    assert action["headers"] == {
        "X-Api-Key": "[secret]",
        "X-Region": "{region}",
        "X-Crm": "{crm_token}",
    }
    assert created.json()["secret_headers"] == ["X-Api-Key"]

    result = api.post(
        "/v1/agents/agent_abc123/functions/check_order/execute",
        json={"arguments": {"order_id": "ORD-1"}},
    ).json()
    assert result["ok"] is True
    arrived = server.received[-1]
    assert arrived.headers["Authorization"] == TOKEN
    assert arrived.headers["X-Api-Key"] == API_KEY_HEADER
    assert arrived.headers["X-Crm"] == CRM
    assert arrived.headers["X-Region"] == "eu"
    assert TOKEN not in result["content"]
    assert CRM not in result["content"]

    fid = created.json()["id"]
    url = f"/v1/agents/agent_abc123/functions/{fid}"
    masked = api.get(url).json()["function"]
    masked["description"] = "Look up an order (edited)."
    assert api.put(url, json=masked).status_code == 200  # [secret] written back: kept
    api.post(
        "/v1/agents/agent_abc123/functions/check_order/execute",
        json={"arguments": {"order_id": "ORD-2"}},
    )
    assert server.received[-1].headers["Authorization"] == TOKEN

    detail_list = api.get("/v1/executions").json()["data"]
    details = "".join(api.get(f"/v1/executions/{e['id']}").text for e in detail_list)
    assert "[redacted]" in details
    for secret in (TOKEN, API_KEY_HEADER, CRM):
        assert secret not in details

    plain = api.get("/v1/agents/agent_abc123/export").text
    assert TOKEN not in plain
    assert CRM not in plain
    assert "[secret]" in plain
    full = api.get("/v1/agents/agent_abc123/export", params={"include_secrets": "true"}).text
    assert TOKEN in full
    assert CRM in full
    assert API_KEY_HEADER in full

    stored = database_text(db_url)
    for secret in (TOKEN, API_KEY_HEADER, CRM, "sk_live_51Hx9Qz7TopSecret", live.key):
        assert secret not in stored
    logged = log_text.getvalue()
    assert "check_order" in logged or "POST" in logged  # the logs were captured
    for secret in (TOKEN, API_KEY_HEADER, CRM, live.key):
        assert secret not in logged


def test_a_masked_secret_with_nothing_stored_is_a_problem(api: httpx.Client, server: Any) -> None:
    create_agent(api)
    doc = echo_function(server.url, api_token="[secret]")
    response = api.post("/v1/agents/agent_abc123/functions", json=doc)
    assert response.status_code == 422
    assert response.json()["problems"][0]["path"] == "$.action.api_token"
    bolna = {
        "name": "f",
        "description": "Look up an order.",
        "parameters": {"type": "object", "properties": {}},
        "key": "custom_task",
        "value": {"method": "GET", "url": "https://a.example", "api_token": "[secret]"},
    }
    in_bolna = api.post("/v1/agents/agent_abc123/functions", json=bolna)
    assert in_bolna.status_code == 422
    assert in_bolna.json()["problems"][0]["path"] == "$.value.api_token"


def test_headers_can_be_marked_secret(api: httpx.Client, server: Any) -> None:
    create_agent(api)
    doc = echo_function(server.url, headers={"X-Tenant-Pin": "pin-4242-secret", "X-Trace": "t"})
    created = api.post(
        "/v1/agents/agent_abc123/functions", params={"secret_header": "x-tenant-pin"}, json=doc
    ).json()
    assert created["function"]["action"]["headers"] == {"X-Tenant-Pin": "[secret]", "X-Trace": "t"}
    assert (
        "pin-4242-secret" not in api.get(f"/v1/agents/agent_abc123/functions/{created['id']}").text
    )


def test_secrets_another_platform_carried_are_secrets_too(api: httpx.Client, db_url: str) -> None:
    """Vapi's server.secret is kept for converting back (platform_fields): encrypted and masked
    like any other secret, and given back whole only when asked."""
    create_agent(api)
    vapi = {
        "type": "function",
        "function": {
            "name": "check_order",
            "description": "Look up an order.",
            "parameters": {"type": "object", "properties": {}},
        },
        "server": {"url": "https://api.example.com/orders", "secret": "whsec_0123456789abcdef"},
    }
    created = api.post("/v1/agents/agent_abc123/functions", json=vapi)
    assert created.status_code == 201, created.text
    url = f"/v1/agents/agent_abc123/functions/{created.json()['id']}"
    back = api.get(url, params={"dialect": "vapi"}).json()["function"]
    assert back["server"]["secret"] == "[secret]"
    assert api.put(url, json=back, params={"dialect": "vapi"}).status_code == 200
    assert "whsec_0123456789abcdef" not in database_text(db_url)
    full = api.get("/v1/agents/agent_abc123/export", params={"include_secrets": "true"}).text
    assert "whsec_0123456789abcdef" in full
