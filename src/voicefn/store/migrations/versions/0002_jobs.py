"""Durable delivery: jobs, their attempts, webhook signing keys.

Revision ID: 0002_jobs
Revises: 0001
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_jobs"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ID = sa.String(length=40)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("id", ID, nullable=False),
        sa.Column("call_id", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=True),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=True),
        sa.Column("redelivered_at_attempt", sa.Integer(), nullable=False),
        sa.Column("due_us", sa.BigInteger(), nullable=True),
        sa.Column("owner", sa.String(length=40), nullable=True),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("sealed", sa.Text(), nullable=True),
        sa.Column("result", JSON, nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column("first_attempt_us", sa.BigInteger(), nullable=True),
        sa.Column("finished_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
    )
    op.create_index("ix_jobs_due", "jobs", ["due_us"])
    op.create_index("ix_jobs_listed", "jobs", ["workspace_id", "created_us", "id"])
    op.create_index("ix_jobs_state", "jobs", ["workspace_id", "state", "created_us"])
    op.create_index("ix_jobs_call", "jobs", ["workspace_id", "call_id"])
    op.create_index("uq_jobs_key", "jobs", ["workspace_id", "key"], unique=True)
    op.create_table(
        "job_attempts",
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("started_us", sa.BigInteger(), nullable=False),
        sa.Column("finished_us", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("retry_after_s", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "job_id", "n"),
    )
    op.create_table(
        "signing_keys",
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("id", ID, nullable=False),
        sa.Column("agent_id", ID, nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
    )
    op.create_index("ix_signing_keys_scope", "signing_keys", ["workspace_id", "agent_id"])


def downgrade() -> None:
    for table in ("signing_keys", "job_attempts", "jobs"):
        op.drop_table(table)
