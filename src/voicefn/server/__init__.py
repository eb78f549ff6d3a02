"""The platform: ``voicefn serve`` (FastAPI app, REST API, operations) over :mod:`voicefn.store`.

``create_app(ServerConfig(...))`` builds the ASGI app; see :mod:`voicefn.server.app`. Names are
imported when first used, so the command line can register ``serve`` without loading FastAPI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .config import EgressDefaults, ServerConfig

_WHERE = {"create_app": "app", "EgressDefaults": "config", "ServerConfig": "config"}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'voicefn.server' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = ["EgressDefaults", "ServerConfig", "create_app"]
