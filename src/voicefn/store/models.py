"""The tables. Every row belongs to a workspace: its key starts with ``workspace_id``.

Times are integer microseconds since the UNIX epoch (``*_us``): exact, comparable and the same on
SQLite and PostgreSQL. Documents are JSON (JSONB on PostgreSQL); secrets are Fernet tokens, never
plaintext (see :mod:`voicefn.store.crypto`).

Changing a table means a new Alembic revision in ``migrations/versions`` (a test compares these
models with the migrated schema).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

Json = JSON().with_variant(JSONB(), "postgresql")
#: Autoincrement on both: SQLite only auto-increments an INTEGER PRIMARY KEY.
Sequence64 = BigInteger().with_variant(Integer(), "sqlite")
ID = 40


class Base(DeclarativeBase):
    pass


class WorkspaceRow(Base):
    __tablename__ = "workspaces"

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_us: Mapped[int] = mapped_column(BigInteger)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    workspace_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    #: The first characters of the key, shown so people can tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    #: SHA-256 of the whole key (hex). Keys are random and long, so no salt is needed.
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    operator: Mapped[bool] = mapped_column(Boolean, default=False)
    created_us: Mapped[int] = mapped_column(BigInteger)
    revoked_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class SettingsRow(Base):
    """Operator settings of one workspace; ``None`` means the server's default."""

    __tablename__ = "workspace_settings"

    workspace_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    allow: Mapped[list[str] | None] = mapped_column(Json, nullable=True)
    allow_private_network: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    https_only: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    sandbox_mode: Mapped[str | None] = mapped_column(String(20), nullable=True)
    updated_us: Mapped[int] = mapped_column(BigInteger)


class AgentRow(Base):
    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_agents_name"),)

    workspace_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: The agent's settings (no functions), secret variables masked.
    document: Mapped[dict[str, Any]] = mapped_column(Json)
    secrets: Mapped[str | None] = mapped_column(Text, nullable=True)
    secret_names: Mapped[list[str]] = mapped_column(Json)
    created_us: Mapped[int] = mapped_column(BigInteger)
    updated_us: Mapped[int] = mapped_column(BigInteger)


class FunctionRow(Base):
    """The current version of a function."""

    __tablename__ = "functions"
    __table_args__ = (
        UniqueConstraint("workspace_id", "agent_id", "name", name="uq_functions_name"),
    )

    workspace_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(ID))
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    #: The canonical (voicefn) document, secrets masked.
    document: Mapped[dict[str, Any]] = mapped_column(Json)
    secrets: Mapped[str | None] = mapped_column(Text, nullable=True)
    secret_names: Mapped[list[str]] = mapped_column(Json)
    #: The dialect the last change was written in.
    dialect: Mapped[str] = mapped_column(String(20))
    created_us: Mapped[int] = mapped_column(BigInteger)
    updated_us: Mapped[int] = mapped_column(BigInteger)


class FunctionVersionRow(Base):
    """Every version a function has had; kept after the function is deleted."""

    __tablename__ = "function_versions"

    workspace_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    function_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(ID))
    name: Mapped[str] = mapped_column(String(64))
    document: Mapped[dict[str, Any]] = mapped_column(Json)
    secrets: Mapped[str | None] = mapped_column(Text, nullable=True)
    secret_names: Mapped[list[str]] = mapped_column(Json)
    dialect: Mapped[str] = mapped_column(String(20))
    #: create, update, restore or delete
    change: Mapped[str] = mapped_column(String(10))
    restored_from: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_us: Mapped[int] = mapped_column(BigInteger)


class ExecutionRow(Base):
    """One run of a function: what went in, the (redacted) request, what came out."""

    __tablename__ = "executions"
    __table_args__ = (
        Index("ix_executions_started", "workspace_id", "started_us", "id"),
        Index("ix_executions_function", "workspace_id", "function_id", "started_us"),
        Index("ix_executions_agent", "workspace_id", "agent_id", "started_us"),
    )

    workspace_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(ID))
    function_id: Mapped[str] = mapped_column(String(ID))
    function_name: Mapped[str] = mapped_column(String(64))
    function_version: Mapped[int] = mapped_column(Integer)
    #: execute (a voice stack), test (the test panel/route) or call (a runtime call)
    source: Mapped[str] = mapped_column(String(10))
    ok: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(64), nullable=True)
    arguments: Mapped[Any] = mapped_column(Json)
    request: Mapped[Any] = mapped_column(Json, nullable=True)
    #: What the LLM read, cut to a few KiB.
    result: Mapped[str] = mapped_column(Text)
    timings: Mapped[dict[str, Any]] = mapped_column(Json)
    call_sid: Mapped[str | None] = mapped_column(String(200), nullable=True)
    tool_call_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    started_us: Mapped[int] = mapped_column(BigInteger)
    total_ms: Mapped[float] = mapped_column(Float)


class ChangeRow(Base):
    """A change feed: each write appends one row so other processes drop what they cached."""

    __tablename__ = "changes"
    #: SQLite: AUTOINCREMENT, so a sequence number is never reused after pruning.
    __table_args__ = ({"sqlite_autoincrement": True},)

    seq: Mapped[int] = mapped_column(Sequence64, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(String(ID))
    #: key, agent, functions or settings
    kind: Mapped[str] = mapped_column(String(20))
    ref: Mapped[str] = mapped_column(String(100))
    #: the process that wrote it (its own changes it has applied already)
    origin: Mapped[str] = mapped_column(String(32))
    created_us: Mapped[int] = mapped_column(BigInteger, index=True)


class MetaRow(Base):
    """Facts about the database itself (the secret key's check value)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


from . import models_jobs  # noqa: E402, F401  (jobs, job_attempts, signing_keys)
from .models_calls import CallRow  # noqa: E402, F401  (calls)
