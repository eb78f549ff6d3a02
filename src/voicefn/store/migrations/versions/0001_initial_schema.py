"""Initial schema: workspaces, API keys, settings, agents, functions and their versions,
executions, the change feed and meta.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ID = sa.String(length=40)


def upgrade() -> None:
    op.create_table(
        "workspaces",
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "api_keys",
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("operator", sa.Boolean(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("revoked_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
        sa.UniqueConstraint("hash"),
    )
    op.create_table(
        "workspace_settings",
        sa.Column("workspace_id", ID, primary_key=True),
        sa.Column("allow", JSON, nullable=True),
        sa.Column("allow_private_network", sa.Boolean(), nullable=True),
        sa.Column("https_only", sa.Boolean(), nullable=True),
        sa.Column("sandbox_mode", sa.String(length=20), nullable=True),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "agents",
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("document", JSON, nullable=False),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column("secret_names", JSON, nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
        sa.UniqueConstraint("workspace_id", "name", name="uq_agents_name"),
    )
    op.create_table(
        "functions",
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("id", ID, nullable=False),
        sa.Column("agent_id", ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", JSON, nullable=False),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column("secret_names", JSON, nullable=False),
        sa.Column("dialect", sa.String(length=20), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
        sa.UniqueConstraint("workspace_id", "agent_id", "name", name="uq_functions_name"),
    )
    op.create_table(
        "function_versions",
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("function_id", ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("agent_id", ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("document", JSON, nullable=False),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column("secret_names", JSON, nullable=False),
        sa.Column("dialect", sa.String(length=20), nullable=False),
        sa.Column("change", sa.String(length=10), nullable=False),
        sa.Column("restored_from", sa.Integer(), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "function_id", "version"),
    )
    op.create_table(
        "executions",
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("id", ID, nullable=False),
        sa.Column("agent_id", ID, nullable=False),
        sa.Column("function_id", ID, nullable=False),
        sa.Column("function_name", sa.String(length=64), nullable=False),
        sa.Column("function_version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=64), nullable=True),
        sa.Column("arguments", JSON, nullable=False),
        sa.Column("request", JSON, nullable=True),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("timings", JSON, nullable=False),
        sa.Column("call_sid", sa.String(length=200), nullable=True),
        sa.Column("tool_call_id", sa.String(length=200), nullable=True),
        sa.Column("started_us", sa.BigInteger(), nullable=False),
        sa.Column("total_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
    )
    op.create_index("ix_executions_started", "executions", ["workspace_id", "started_us", "id"])
    op.create_index(
        "ix_executions_function", "executions", ["workspace_id", "function_id", "started_us"]
    )
    op.create_index("ix_executions_agent", "executions", ["workspace_id", "agent_id", "started_us"])
    op.create_table(
        "changes",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("ref", sa.String(length=100), nullable=False),
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_changes_created_us", "changes", ["created_us"])
    op.create_table(
        "meta",
        sa.Column("key", sa.String(length=50), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "meta",
        "changes",
        "executions",
        "function_versions",
        "functions",
        "agents",
        "workspace_settings",
        "api_keys",
        "workspaces",
    ):
        op.drop_table(table)
