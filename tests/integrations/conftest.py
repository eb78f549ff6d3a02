"""Fixtures for the framework adapters' tests (servers in adapters_support.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from adapters_support import SipAPI, StoreAPI, serve
from aiohttp import web

from voicefn.testing import ScriptedLLM


@pytest.fixture
async def store_api() -> AsyncIterator[StoreAPI]:
    state = StoreAPI()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner, state.url = await serve(app)
    try:
        yield state
    finally:
        if state._release is not None:
            state._release.set()
        await runner.cleanup()


@pytest.fixture
async def sip_api() -> AsyncIterator[SipAPI]:
    state = SipAPI()
    app = web.Application()
    app.router.add_post("/twirp/livekit.SIP/TransferSIPParticipant", state.handle)
    runner, state.url = await serve(app)
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
def scripted_llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as llm:
        yield llm
