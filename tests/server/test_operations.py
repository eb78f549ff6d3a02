"""Operations: health and readiness, Prometheus metrics, request ids, JSON logs without secrets,
a 500 that says nothing but its request id, and a graceful shutdown that lets in-flight
executions finish."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
from api_helpers import create_agent, database_execute, echo_function, wait_until
from live import Live, serve_process

TOKEN = "Bearer sk_live_ops_0123456789abcdef"


def test_health_and_readiness(live: Live) -> None:
    assert httpx.get(f"{live.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{live.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["database"] in ("sqlite", "postgresql")
    docs = httpx.get(f"{live.url}/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    # / is the dashboard: signed out, it asks for a key first
    assert httpx.get(f"{live.url}/", follow_redirects=False).headers["location"] == "/login?next=/"


def test_metrics_count_executions_by_function_and_outcome_and_routes(
    live: Live, api: httpx.Client, server: Any
) -> None:
    create_agent(api)
    api.post("/v1/agents/agent_abc123/functions", json=echo_function(server.url))
    for order in ("1", "2"):
        api.post(
            "/v1/agents/agent_abc123/functions/check_order/execute",
            json={"arguments": {"order_id": order}},
        )
    api.post("/v1/agents/agent_abc123/functions/check_order/execute", json={"arguments": {}})
    text = api.get("/metrics").text
    ws = api.get("/v1/workspace").json()["id"]
    assert (
        f'voicefn_executions_total{{function="check_order",outcome="ok",source="execute",'
        f'workspace="{ws}"}} 2.0'
    ) in text
    assert 'outcome="missing_arguments"' in text
    assert "voicefn_execution_duration_seconds_bucket" in text
    assert (
        'voicefn_http_requests_total{method="POST",'
        'route="/v1/agents/{agent_id}/functions/{name}/execute",status="200"} 3.0'
    ) in text
    member = api.post("/v1/api-keys", json={"name": "member"}).json()["key"]
    assert (
        httpx.get(f"{live.url}/metrics", headers={"Authorization": f"Bearer {member}"}).status_code
        == 403
    )


def test_a_500_carries_only_a_request_id(api: httpx.Client, server: Any, db_url: str) -> None:
    create_agent(api)
    fid = api.post("/v1/agents/agent_abc123/functions", json=echo_function(server.url)).json()["id"]
    # Break the stored document behind the service's back (the edge of the world).
    database_execute(
        db_url.replace("+asyncpg", ""),
        f"UPDATE functions SET document = '{{\"name\": 1}}' WHERE id = '{fid}'",
    )
    response = api.get(
        f"/v1/agents/agent_abc123/functions/{fid}", headers={"X-Request-Id": "req-42"}
    )
    assert response.status_code == 500
    assert response.json() == {"error": "internal", "request_id": "req-42"}
    assert response.headers["x-request-id"] == "req-42"
    other = api.get("/v1/agents")
    assert other.status_code == 200  # the service goes on
    assert len(other.headers["x-request-id"]) == 32


def test_logs_are_json_lines_with_request_and_workspace_and_no_secrets(
    tmp_path: Path, server: Any
) -> None:
    with serve_process(tmp_path / "data", "--allow-private-network") as proc:
        assert proc.key is not None
        with proc.client(proc.key) as api:
            create_agent(api, variables={"crm_token": "crm-secret-777"})
            doc = echo_function(server.url, api_token=TOKEN, headers={"X-Crm": "{crm_token}"})
            api.post("/v1/agents/agent_abc123/functions", json=doc)
            run = api.post(
                "/v1/agents/agent_abc123/functions/check_order/execute",
                json={"arguments": {"order_id": "1"}},
                headers={"X-Request-Id": "trace-abc"},
            )
            assert run.headers["x-request-id"] == "trace-abc"
            ws = api.get("/v1/workspace").json()["id"]
            bad = api.post("/v1/agents/agent_abc123/functions", json={"name": "x"})
            assert bad.status_code == 422
    logs = proc.logs()
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert records
    assert all({"ts", "level", "logger", "msg"} <= r.keys() for r in records)
    access = [r for r in records if r.get("request_id") == "trace-abc"]
    assert access
    assert access[-1]["workspace_id"] == ws
    assert access[-1]["status"] == 200
    assert "/v1/agents/{agent_id}/functions/{name}/execute" in access[-1]["msg"]
    for secret in (proc.key, TOKEN, "sk_live_ops_0123456789abcdef", "crm-secret-777"):
        assert secret not in logs


def test_graceful_shutdown_lets_in_flight_executions_finish(tmp_path: Path, server: Any) -> None:
    data = tmp_path / "data"
    slow = echo_function(server.url, "slow")
    slow["action"]["url"] = f"{server.url}/slow?ms=1500"
    slow["action"]["timeout_ms"] = 30_000
    answers: list[httpx.Response] = []
    with serve_process(data, "--allow-private-network") as proc:
        assert proc.key is not None
        key = proc.key
        with proc.client(key) as api:
            create_agent(api)
            api.post("/v1/agents/agent_abc123/functions", json=slow)

        def call() -> None:
            with proc.client(key) as client:
                answers.append(
                    client.post(
                        "/v1/agents/agent_abc123/functions/slow/execute",
                        json={"arguments": {"order_id": "1"}},
                    )
                )

        caller = threading.Thread(target=call)
        caller.start()
        wait_until(lambda: any(r.path == "/slow" for r in server.received), "the slow request")
        # SIGTERM while the function runs; uvicorn re-raises the signal once it has shut down
        assert proc.terminate() in (0, -15)
        caller.join(60)
    assert len(answers) == 1
    assert answers[0].status_code == 200
    assert answers[0].json()["ok"] is True
    with serve_process(data, "--allow-private-network") as again, again.client(key) as api:
        listed = api.get("/v1/executions").json()["data"]
        assert [e["function"] for e in listed] == ["slow"]


def test_a_body_over_the_limit_is_a_413_before_or_while_it_is_read(config: Any) -> None:
    import dataclasses

    from live import live_server

    small = dataclasses.replace(config, max_body_bytes=64 * 1024)
    big = json.dumps({"name": "x" * (128 * 1024)}).encode()

    def chunks() -> Any:  # no Content-Length: the limit is found while reading
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    with live_server(small) as live, live.client() as api:
        declared = api.put("/v1/agents/agent_big", content=big)
        assert declared.status_code == 413, declared.text
        assert declared.json()["error"] == "too_large"
        assert "65536 bytes" in declared.json()["message"]
        assert len(declared.headers["x-request-id"]) == 32
        streamed = api.put(
            "/v1/agents/agent_big",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        assert streamed.status_code == 413, streamed.text
        assert streamed.json()["error"] == "too_large"
        execute = api.post(
            "/v1/agents/agent_big/functions/f/execute", content=chunks()
        )  # the execute fast path reads through the same limit
        assert execute.status_code == 413, execute.text
        assert api.get("/v1/agents/agent_big").status_code == 404  # nothing was stored
        create_agent(api)  # a body under the limit: the service goes on
        assert api.get("/v1/agents/agent_abc123").status_code == 200
