"""docs/api.md names every route the service answers, and no route it does not answer."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Route

from voicefn.server.app import create_app
from voicefn.server.config import ServerConfig

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# `GET/PUT /v1/agents/{agent_id}?x=`: methods joined by "/", the path up to a query or the span's end
_NAMED = re.compile(
    r"\b((?:GET|POST|PUT|PATCH|DELETE)(?:/(?:GET|POST|PUT|PATCH|DELETE))*) (/[^\s`?|]*)"
)

Endpoint = tuple[str, str]


def named(text: str) -> set[Endpoint]:
    """The (method, path) pairs a Markdown text names in its code spans."""
    found: set[Endpoint] = set()
    for span in re.findall(r"`([^`]+)`", text):
        for methods, path in _NAMED.findall(span):
            found.update((method, path) for method in methods.split("/"))
    return found


def served(tmp_path: Path) -> set[Endpoint]:
    """Every route of the OpenAPI document (as GET /openapi.json serves it), and the routes
    under /v1 outside it (the MCP endpoint)."""
    app = create_app(ServerConfig(data_dir=tmp_path / "data"))
    response = TestClient(app).get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    found = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    for route in app.router.routes:
        outside = isinstance(route, Route) and not isinstance(route, APIRoute)
        if outside and route.path.startswith("/v1/"):
            found.update((m, route.path) for m in route.methods or () if m in METHODS)
    return found


def missing_and_stale(tmp_path: Path, text: str) -> tuple[list[str], list[str]]:
    routes, documented = served(tmp_path), named(text)
    missing = sorted(f"{m} {p}" for m, p in routes - documented)
    stale = sorted(f"{m} {p}" for m, p in documented - routes)
    return missing, stale


def test_every_route_is_documented_and_every_documented_route_exists(tmp_path: Path) -> None:
    missing, stale = missing_and_stale(tmp_path, DOCS.read_text())
    assert not missing, (
        f"docs/api.md does not name these routes: {missing}. Add each, in full (`METHOD /path`), "
        "to a table under '## Routes'."
    )
    assert not stale, (
        f"docs/api.md names routes the service does not answer: {stale}. Correct or remove them."
    )


def test_the_check_finds_a_route_taken_out_of_the_docs(tmp_path: Path) -> None:
    text = DOCS.read_text()
    assert "`POST /v1/jobs/{job_id}/redeliver`" in text
    missing, _ = missing_and_stale(tmp_path, text.replace("`POST /v1/jobs/{job_id}/redeliver`", ""))
    assert missing == ["POST /v1/jobs/{job_id}/redeliver"]


def test_the_reference_covers_the_routes_issue_9_named(tmp_path: Path) -> None:
    routes = served(tmp_path)
    for endpoint in [
        ("GET", "/v1/jobs"),
        ("POST", "/v1/jobs/{job_id}/redeliver"),
        ("POST", "/v1/signing-keys"),
        ("GET", "/v1/calls"),
        ("POST", "/v1/agents/{agent_id}/mcp"),
    ]:
        assert endpoint in routes
        assert endpoint in named(DOCS.read_text())


def test_named_reads_joined_methods_and_drops_the_query() -> None:
    text = "| `GET/PUT /v1/agents/{agent_id}?x=1` · `DELETE /v1/a` | GET /not-in-a-span |"
    assert named(text) == {
        ("GET", "/v1/agents/{agent_id}"),
        ("PUT", "/v1/agents/{agent_id}"),
        ("DELETE", "/v1/a"),
    }
