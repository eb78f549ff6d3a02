"""Finished calls: facts, transcript, variables, executions, and what post-call work found.

Revision ID: 0003_calls
Revises: 0002_jobs
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_calls"
down_revision = "0002_jobs"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ID = sa.String(length=40)


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("id", ID, nullable=False),
        sa.Column("agent_id", ID, nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("call_sid", sa.String(length=200), nullable=True),
        sa.Column("execution_id", sa.String(length=200), nullable=False),
        sa.Column("from_number", sa.String(length=64), nullable=True),
        sa.Column("to_number", sa.String(length=64), nullable=True),
        sa.Column("language", sa.String(length=20), nullable=False),
        sa.Column("started_us", sa.BigInteger(), nullable=False),
        sa.Column("ended_us", sa.BigInteger(), nullable=False),
        sa.Column("ended_by", sa.String(length=10), nullable=False),
        sa.Column("transfer_number", sa.String(length=64), nullable=True),
        sa.Column("transcript", JSON, nullable=False),
        sa.Column("variables", JSON, nullable=False),
        sa.Column("sealed", sa.Text(), nullable=True),
        sa.Column("executions", JSON, nullable=False),
        sa.Column("functions", JSON, nullable=False),
        sa.Column("extraction", JSON, nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
    )
    op.create_index("ix_calls_started", "calls", ["workspace_id", "started_us", "id"])
    op.create_index("ix_calls_agent", "calls", ["workspace_id", "agent_id", "started_us"])
    op.create_index(
        "uq_calls_external", "calls", ["workspace_id", "agent_id", "external_id"], unique=True
    )


def downgrade() -> None:
    op.drop_table("calls")
