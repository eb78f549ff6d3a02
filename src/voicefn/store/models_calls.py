"""The calls table: finished calls a host reported (``POST /v1/agents/{agent_id}/calls``), with
what post-call work found. Same conventions as :mod:`voicefn.store.models` (imported at its end,
so it is part of ``Base.metadata``); the schema is created by the revision ``0003_calls``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .models import ID, Base

#: as models.Json (JSONB on PostgreSQL); its own, since models imports this module at its end
Json = JSON().with_variant(JSONB(), "postgresql")


class CallRow(Base):
    """One finished call: its facts, transcript, variables (secret ones sealed), executions,
    the post-call functions it ran with (id and version) and, once extracted, the post-call
    variables, summary and outcome. Its post-call jobs are in ``jobs`` (``call_id`` = ``id``)."""

    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_started", "workspace_id", "started_us", "id"),
        Index("ix_calls_agent", "workspace_id", "agent_id", "started_us"),
        #: a host reporting the same call again (a retried request) finds the first report
        Index("uq_calls_external", "workspace_id", "agent_id", "external_id", unique=True),
    )

    workspace_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(ID))
    #: the host's id of the call: its call_sid, else its execution id
    external_id: Mapped[str] = mapped_column(String(200))
    call_sid: Mapped[str | None] = mapped_column(String(200), nullable=True)
    execution_id: Mapped[str] = mapped_column(String(200))
    from_number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    to_number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    language: Mapped[str] = mapped_column(String(20))
    started_us: Mapped[int] = mapped_column(BigInteger)
    ended_us: Mapped[int] = mapped_column(BigInteger)
    #: caller, agent, transfer or system
    ended_by: Mapped[str] = mapped_column(String(10))
    transfer_number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    transcript: Mapped[list[Any]] = mapped_column(Json)
    #: the call's variables at its end, secret ones masked
    variables: Mapped[dict[str, Any]] = mapped_column(Json)
    #: the secret variables' values, a Fernet token
    sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    executions: Mapped[list[Any]] = mapped_column(Json)
    #: the post-call functions at the time of the call: [{id, name, version}]
    functions: Mapped[list[Any]] = mapped_column(Json)
    #: the extraction's outcome (values, each field's status), once the post-call job ran
    extraction: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(20), nullable=True)
    created_us: Mapped[int] = mapped_column(BigInteger)
    updated_us: Mapped[int] = mapped_column(BigInteger)
