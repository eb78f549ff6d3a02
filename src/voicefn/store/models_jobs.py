"""The tables of durable delivery (:mod:`voicefn.jobs`): jobs, their attempts, and webhook
signing keys. Same conventions as :mod:`voicefn.store.models` (imported at its end, so these are
part of ``Base.metadata``); the schema is created by the revision ``0002_jobs``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .models import ID, Base, Json


class JobRow(Base):
    """One unit of post-call work. ``due_us`` is set while the job is queued (its next attempt)
    or running (the end of its worker's lease) and NULL once it finished: workers claim the rows
    with ``due_us <= now``, oldest first, through ``ix_jobs_due``."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_due", "due_us"),
        Index("ix_jobs_listed", "workspace_id", "created_us", "id"),
        Index("ix_jobs_state", "workspace_id", "state", "created_us"),
        Index("ix_jobs_call", "workspace_id", "call_id"),
        Index("uq_jobs_key", "workspace_id", "key", unique=True),
    )

    workspace_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    call_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: http, function or task
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(200))
    #: the enqueuer's dedupe key (unique in the workspace), or NULL
    key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: queued, running, succeeded or dead
    state: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer)
    #: attempts before it goes to dead-letter; NULL: the worker's setting
    max_attempts: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: attempts made before its last redelivery (they do not count against ``max_attempts``)
    redelivered_at_attempt: Mapped[int] = mapped_column(Integer)
    due_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: the worker holding a running job (a claim token: a late answer from an expired lease
    #: cannot finish a job another worker took over)
    owner: Mapped[str | None] = mapped_column(String(40), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    #: the job's secrets (headers, the function's secrets, the context), a Fernet token
    sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[Any] = mapped_column(Json, nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_us: Mapped[int] = mapped_column(BigInteger)
    updated_us: Mapped[int] = mapped_column(BigInteger)
    first_attempt_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    finished_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class JobAttemptRow(Base):
    __tablename__ = "job_attempts"

    workspace_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_us: Mapped[int] = mapped_column(BigInteger)
    finished_us: Mapped[int] = mapped_column(BigInteger)
    #: ok, retry or final
    outcome: Mapped[str] = mapped_column(String(10))
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    retry_after_s: Mapped[float | None] = mapped_column(Float, nullable=True)


class SigningKeyRow(Base):
    """A webhook signing secret (``whsec_...``, encrypted): the workspace's (``agent_id`` "")
    or one agent's. Every key not expired signs, so receivers can rotate without a gap."""

    __tablename__ = "signing_keys"
    __table_args__ = (Index("ix_signing_keys_scope", "workspace_id", "agent_id"),)

    workspace_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(ID))
    secret: Mapped[str] = mapped_column(Text)
    #: the first characters of the secret, shown so people can tell keys apart
    prefix: Mapped[str] = mapped_column(String(16))
    created_us: Mapped[int] = mapped_column(BigInteger)
    expires_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
