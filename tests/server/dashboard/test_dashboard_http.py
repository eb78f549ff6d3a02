"""The dashboard over plain HTTP: what ships (offline, checksummed), the session cookie's rules,
the agent form, and the test call's LLM rules (egress, the operator's key)."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import echo_function
from dashboard_helpers import Site, allow_loopback, new_workspace, read_events, session

from voicefn.server.dashboard import auth
from voicefn.server.dashboard.render import STATIC
from voicefn.store import SecretBox
from voicefn.testing import text

PAGES = ("/agents", "/functions", "/executions", "/keys")


def test_vendored_files_match_their_recorded_versions_and_checksums() -> None:
    rows = [
        line.split()
        for line in (STATIC / "VERSIONS").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    recorded = {row[0]: row for row in rows}
    assert set(recorded) == {"editor.js", "htmx.min.js"}
    for name, (_, sha256, *packages) in recorded.items():
        assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == sha256, name
        assert packages, f"{name}: which packages it was built from"
    assert 'version:"2.0.11"' in (STATIC / "htmx.min.js").read_text()
    assert "htmx.org@2.0.11" in recorded["htmx.min.js"]
    lock = (Path(auth.__file__).parent / "frontend" / "package-lock.json").read_text()
    for package in recorded["editor.js"][2:]:  # the bundle is what the lockfile pins
        name, version = package.rsplit("@", 1)
        assert re.search(rf'"node_modules/{re.escape(name)}": {{\s*"version": "{version}"', lock)


def test_pages_load_nothing_from_elsewhere_and_send_strict_headers(site: Site) -> None:
    client, _ = session(site, site.key)
    try:
        for path in PAGES:
            response = client.get(path)
            assert response.status_code == 200, path
            assert "script-src 'self'" in response.headers["content-security-policy"]
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["cache-control"] == "no-store"
            for url in re.findall(r'(?:src|href)="([^"]*)"', response.text):
                assert url.startswith(("/", "#", "data:")), f"{path} loads {url}"
        for name in ("editor.js", "htmx.min.js", "app.css", "function.js", "call.js"):
            assert client.get(f"/static/{name}").status_code == 200
    finally:
        client.close()


def _cookie(site: Site, value: str) -> httpx.Client:
    client = httpx.Client(base_url=site.url, timeout=60.0, follow_redirects=False)
    client.cookies.set(auth.COOKIE, value)
    return client


def test_only_a_cookie_this_server_sealed_recently_signs_in(site: Site) -> None:
    box: SecretBox = site.live.platform.store.box  # type: ignore[attr-defined]
    now = int(time.time())
    good = {"purpose": auth.PURPOSE, "key": site.key, "csrf": "t", "issued": now}
    cases = {
        "another server's key": SecretBox(["another passphrase"], "test").encrypt(good),
        "another purpose": box.encrypt({**good, "purpose": "a stored secret"}),
        "expired": box.encrypt({**good, "issued": now - auth.MAX_AGE_S - 1}),
        "a revoked-looking key": box.encrypt({**good, "key": "vfn_unknown"}),
        "tampered": box.encrypt(good)[:-6] + "AAAAAA",
        "not a token": "hello",
    }
    for case, value in cases.items():
        with _cookie(site, value) as client:
            response = client.get("/keys")
            assert response.status_code == 303, case
            assert response.headers["location"] == "/login?next=/keys", case
    with _cookie(site, box.encrypt(good)) as client:  # the control: the same, sealed right
        assert client.get("/keys").status_code == 200


def test_login_goes_back_only_to_this_site_and_refuses_other_origins(site: Site) -> None:
    with httpx.Client(base_url=site.url, timeout=60.0, follow_redirects=False) as client:
        for target, expected in [
            ("/executions?source=test", "/executions?source=test"),
            ("//evil.example/x", "/agents"),
            ("https://evil.example/", "/agents"),
            ("/\\evil.example", "/agents"),
        ]:
            response = client.post("/login", data={"api_key": site.key, "next": target})
            assert response.headers["location"] == expected, target
        foreign = client.post(
            "/login",
            data={"api_key": site.key, "next": "/agents"},
            headers={"Origin": "http://evil.example"},
        )
        assert foreign.status_code == 403
        assert "set-cookie" not in foreign.headers
        remote = client.post(  # plain HTTP to a machine name: a Secure cookie would be lost
            "/login",
            data={"api_key": site.key, "next": "/agents"},
            headers={"Host": "voicefn.internal"},
        )
        assert remote.status_code == 401
        assert "HTTPS" in remote.text
        assert "set-cookie" not in remote.headers


def test_the_agent_form_reports_problems_and_keeps_secret_variables(site: Site) -> None:
    key = new_workspace(site, "form")
    with site.api(key) as api:
        agent = api.post(
            "/v1/agents",
            json={
                "name": "crm-agent",
                "system_prompt": "Hi",
                "variables": {"crm_token": "tok-123", "tier": "gold"},
                "llm": {"model": "m1", "max_tool_rounds": 3},
            },
        ).json()
    client, token = session(site, key)
    try:
        shown = client.get(f"/agents/{agent['id']}").text
        assert "tok-123" not in shown
        assert "[secret]" in shown
        fields = {
            "csrf_token": token,
            "name": "crm-agent",
            "system_prompt": "Hi {tier} caller",
            "variables": '{"crm_token": "[secret]", "tier": "silver"',  # not JSON
            "llm_model": "m2",
        }
        bad = client.post(f"/agents/{agent['id']}", data=fields)
        assert bad.status_code == 422
        assert "$.variables" in bad.text
        assert "Hi {tier} caller" in bad.text  # what was typed is kept in the form
        saved = client.post(
            f"/agents/{agent['id']}",
            data={**fields, "variables": '{"crm_token": "[secret]", "tier": "silver"}'},
        )
        assert saved.status_code == 303
    finally:
        client.close()
    with site.api(key) as api:
        doc = api.get(
            f"/v1/agents/{agent['id']}/export", params={"format": "json", "include_secrets": "1"}
        ).json()
    assert doc["variables"] == {"crm_token": "tok-123", "tier": "silver"}
    assert doc["system_prompt"] == "Hi {tier} caller"
    assert doc["llm"]["model"] == "m2"
    assert doc["llm"]["max_tool_rounds"] == 3  # a field the form does not show stays


def _call_agent(site: Site, key: str, **llm: Any) -> str:
    with site.api(key) as api:
        created = api.post(
            "/v1/agents", json={"name": "caller", "system_prompt": "You help.", "llm": llm}
        )
        assert created.status_code == 201, created.text
        return str(created.json()["id"])


def test_a_test_call_reaches_only_llm_endpoints_the_workspace_may_reach(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-operator-secret-0123")
    key = new_workspace(site, "llm")  # loopback not allowed (the server's default)
    agent_id = _call_agent(site, key, model="scripted", base_url=site.llm.base_url)
    client, token = session(site, key)
    try:
        headers = {"X-CSRF-Token": token}
        refused = client.post(f"/agents/{agent_id}/call", headers=headers, json={})
        assert refused.status_code == 409
        assert "egress" in refused.json()["message"]
        allow_loopback(site, key)
        before = len(site.llm.requests)
        started = client.post(f"/agents/{agent_id}/call", headers=headers, json={})
        call_id = read_events(started)[0][1]["id"]
        site.llm.push(text("Hello there."))
        turn = client.post(f"/calls/{call_id}/turn", headers=headers, json={"text": "hi"})
        assert ("message", {"text": "Hello there."}) in read_events(turn)
        assert len(site.llm.requests) == before + 1
        # The operator's key is for the operator's endpoint, never for one a tenant names.
        sent = site.llm.request_headers[-1]
        assert "sk-operator-secret-0123" not in str(sent)
        hung = client.post(f"/calls/{call_id}/hangup", headers=headers, json={})
        assert read_events(hung)[-1][0] == "done"
        gone = client.post(f"/calls/{call_id}/turn", headers=headers, json={"text": "again"})
        assert gone.status_code == 404
    finally:
        client.close()


def test_the_call_page_says_how_to_configure_an_llm(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("VOICEFN_LLM_MODEL", "OPENAI_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    key = new_workspace(site, "nollm")
    agent_id = _call_agent(site, key)
    client, token = session(site, key)
    try:
        shown = client.get(f"/agents/{agent_id}/call").text
        assert "No LLM model is set" in shown
        assert 'id="start"' not in shown
        refused = client.post(f"/agents/{agent_id}/call", headers={"X-CSRF-Token": token}, json={})
        assert refused.status_code == 409
    finally:
        client.close()


def test_deleting_a_function_then_its_agent(site: Site) -> None:
    key = new_workspace(site, "delete")
    with site.api(key) as api:
        agent = api.post("/v1/agents", json={"name": "gone", "system_prompt": "Hi"}).json()
        fn = api.post(
            f"/v1/agents/{agent['id']}/functions", json=echo_function(site.functions.url)
        ).json()
    client, token = session(site, key)
    try:
        base = f"/agents/{agent['id']}"
        deleted = client.post(f"{base}/functions/{fn['id']}/delete", data={"csrf_token": token})
        assert (deleted.status_code, deleted.headers["location"]) == (303, base)
        assert client.get(f"{base}/functions/{fn['id']}").status_code == 404
        deleted = client.post(f"{base}/delete", data={"csrf_token": token})
        assert (deleted.status_code, deleted.headers["location"]) == (303, "/agents")
    finally:
        client.close()
    with site.api(key) as api:
        assert api.get(f"/v1/agents/{agent['id']}").status_code == 404
