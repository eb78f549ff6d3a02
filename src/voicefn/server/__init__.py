"""The platform: ``voicefn serve`` (FastAPI app, REST API, operations) over :mod:`voicefn.store`.

``create_app(ServerConfig(...))`` builds the ASGI app; see :mod:`voicefn.server.app`.
"""

from __future__ import annotations

from .app import create_app
from .config import EgressDefaults, ServerConfig

__all__ = ["EgressDefaults", "ServerConfig", "create_app"]
