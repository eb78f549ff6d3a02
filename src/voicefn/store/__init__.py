"""Storage for the platform: workspaces, keys, agents, functions and their versions, executions.

``Store`` is a small Protocol (see :mod:`voicefn.store.protocol`); :func:`open_store` gives the SQL
one (SQLite with WAL by default, PostgreSQL by URL), migrated to the newest schema. Every
repository method takes the :class:`Workspace` whose data it touches.
"""

from __future__ import annotations

from .crypto import SecretBox, SecretKeyError
from .database import ENV_URL, DatabaseConfigError, database_url
from .protocol import BadCursor, LastKey, NameTaken, Repos, Store, StoreError
from .records import (
    AgentRecord,
    ApiKey,
    ExecutionFilter,
    ExecutionRecord,
    FunctionRecord,
    NewApiKey,
    Page,
    Principal,
    Settings,
    VersionRecord,
    Workspace,
)
from .sql import SqlStore, open_store

__all__ = [
    "ENV_URL",
    "AgentRecord",
    "ApiKey",
    "BadCursor",
    "DatabaseConfigError",
    "ExecutionFilter",
    "ExecutionRecord",
    "FunctionRecord",
    "LastKey",
    "NameTaken",
    "NewApiKey",
    "Page",
    "Principal",
    "Repos",
    "SecretBox",
    "SecretKeyError",
    "Settings",
    "SqlStore",
    "Store",
    "StoreError",
    "VersionRecord",
    "Workspace",
    "database_url",
    "open_store",
]
