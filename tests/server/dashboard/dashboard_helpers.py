"""What the dashboard tests share: the running site, signing in, screenshots."""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from live import Live

from voicefn.server.dashboard.auth import COOKIE
from voicefn.testing import ScriptedLLM

from servers import LocalServer

CHROMIUM = os.environ.get("VOICEFN_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
#: A busy 2-core machine: waits for elements and states, never sleeps.
TIMEOUT_MS = 30_000


@dataclass
class Site:
    """One running service and what its tests talk to."""

    live: Live
    functions: LocalServer  # where the tests' functions send their requests
    llm: ScriptedLLM  # an OpenAI-compatible endpoint answering from a script

    @property
    def url(self) -> str:
        return self.live.url

    @property
    def key(self) -> str:
        return self.live.key

    def api(self, key: str | None = None) -> httpx.Client:
        return self.live.client(key)


def allow_loopback(site: Site, workspace_key: str | None = None) -> None:
    """Let a workspace's functions reach 127.0.0.1 (its settings, set with the operator key)."""
    with site.api(workspace_key) as api:
        workspace_id = api.get("/v1/workspace").json()["id"]
    with site.api() as operator:
        response = operator.put(
            f"/v1/workspaces/{workspace_id}/settings", json={"allow_private_network": True}
        )
        assert response.status_code == 200, response.text


def new_workspace(site: Site, name: str) -> str:
    """A workspace of its own (a test's data cannot meet another's); its key."""
    with site.api() as operator:
        created = operator.post("/v1/workspaces", json={"name": f"{name}-{secrets.token_hex(3)}"})
        assert created.status_code == 201, created.text
        key: str = created.json()["api_key"]["key"]
    return key


def arrive(page: Any, url: Any) -> None:
    """The page is at ``url`` and its deferred scripts ran (they attach the handlers the test
    uses next: a click or a change before that would go unheard on a busy machine)."""
    from playwright.sync_api import expect

    expect(page).to_have_url(url)
    page.wait_for_load_state("load")


def login(page: Any, site: Site, key: str, then: str = "/agents") -> None:
    page.goto(f"{site.url}{then}")
    arrive(page, re.compile(r"/login\?next="))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    arrive(page, f"{site.url}{then}")


def shot(page: Any, name: str) -> None:
    """With VOICEFN_SCREENSHOTS=1: the page as it is now, in docs/screenshots/<name>.png."""
    if os.environ.get("VOICEFN_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def session(site: Site, key: str) -> tuple[httpx.Client, str]:
    """A client signed in with ``key`` (its session cookie), and the session's CSRF token."""
    client = httpx.Client(base_url=site.url, timeout=60.0, follow_redirects=False)
    signed = client.post("/login", data={"api_key": key, "next": "/keys"})
    assert signed.status_code == 303, signed.text
    # httpx keeps a Secure cookie for https only; a browser keeps it for loopback too.
    client.cookies.set(COOKIE, signed.cookies[COOKIE])
    page = client.get("/keys")
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert token is not None
    return client, token.group(1)


def read_events(response: httpx.Response) -> list[tuple[str, Any]]:
    events = []
    for block in response.text.split("\n\n"):
        name = re.search(r"^event: (.+)$", block, re.M)
        data = re.search(r"^data: (.+)$", block, re.M)
        if name and data:
            events.append((name.group(1), json.loads(data.group(1))))
    return events
