from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from servers import LocalServer, running_server


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with running_server() as s:
        yield s
