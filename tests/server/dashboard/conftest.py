"""The dashboard under test: the real service (uvicorn on 127.0.0.1, a free port, a temporary
data directory, SQLite), real loopback servers for functions and the LLM, and Debian's Chromium
driven by Playwright.

Browser tests skip, saying why, only when Chromium is missing outside CI; with ``CI`` set they
fail instead. ``VOICEFN_SCREENSHOTS=1`` makes them save a screenshot of each page they visit to
``docs/screenshots/`` (see ``dashboard_helpers.shot``).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from dashboard_helpers import CHROMIUM, TIMEOUT_MS, Site
from live import live_server

from voicefn.server import ServerConfig
from voicefn.testing import ScriptedLLM

from servers import running_server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data = tmp_path_factory.mktemp("dashboard") / "data"
    # The server's defaults refuse private networks; a workspace opens loopback through its
    # settings, as an operator would (dashboard_helpers.allow_loopback).
    config = ServerConfig(data_dir=data, change_poll_s=0.05)
    with live_server(config) as live, running_server() as functions, ScriptedLLM() as llm:
        yield Site(live, functions, llm)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        message = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{message}; CI runs the browser tests")
        pytest.skip(f"{message}: browser tests skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking"]
        )
        try:
            yield browser
        finally:
            browser.close()


def _open(chromium: Any, width: int, height: int) -> Iterator[Any]:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    context = chromium.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield tab
    finally:
        context.close()
    assert errors == [], f"the page's scripts failed: {errors}"


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) at 1280x800; a script error fails the test."""
    yield from _open(chromium, 1280, 800)


@pytest.fixture
def phone(chromium: Any) -> Iterator[Any]:
    """A fresh browser context at a phone's width (390x844)."""
    yield from _open(chromium, 390, 844)
