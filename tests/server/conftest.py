from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "store"))
sys.path.insert(0, str(Path(__file__).parent))

from live import Live, live_server
from platform_db import BACKENDS, database

from voicefn.server import EgressDefaults, ServerConfig


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> ServerConfig:
    # Tests call functions on 127.0.0.1, so the server's default allows the private network.
    return ServerConfig(
        data_dir=tmp_path / "data",
        database_url=db_url,
        egress=EgressDefaults(allow_private_network=True),
        change_poll_s=0.05,
    )


@pytest.fixture
def live(config: ServerConfig) -> Iterator[Live]:
    with live_server(config) as served:
        yield served


@pytest.fixture
def api(live: Live) -> Iterator[httpx.Client]:
    with live.client() as client:
        yield client
