"""Alembic's environment for voicefn: run through :func:`voicefn.store.migrate.upgrade`, which
passes the connection (sync facade of the async engine) in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from voicefn.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "voicefn's migrations run through voicefn.store.migrate.upgrade(), "
        "which `voicefn serve` calls on start"
    )
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
