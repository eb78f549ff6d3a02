"""What a server is started with: where its data lives and the egress defaults of every workspace."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..jobs.settings import JobSettings

SandboxMode = Literal["isolated", "unsafe-process"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8700
DEFAULT_DATA_DIR = Path("voicefn-data")
FIRST_WORKSPACE = "default"


@dataclass(frozen=True)
class EgressDefaults:
    """The egress options of ``voicefn invoke``, applied to every workspace that does not set
    its own (see the settings routes)."""

    allow: tuple[str, ...] = ()
    allow_private_network: bool = False
    https_only: bool = False
    sandbox_mode: SandboxMode = "isolated"


@dataclass(frozen=True)
class ServerConfig:
    """Everything :func:`voicefn.server.app.create_app` needs; tests build one per server."""

    data_dir: Path = DEFAULT_DATA_DIR
    #: ``None``: ``$VOICEFN_DATABASE_URL``, else SQLite in ``data_dir``.
    database_url: str | None = None
    egress: EgressDefaults = field(default_factory=EgressDefaults)
    #: ``None``: ``$VOICEFN_SECRET_KEY``, else ``<data_dir>/secret.key``.
    secret_key: str | None = None
    #: How often other processes' changes are picked up (the execute path's caches).
    change_poll_s: float = 0.25
    #: The recorder writes executions in batches of at most this many, this often (they are
    #: journaled at once; this only delays when other processes can list them).
    record_batch: int = 500
    record_interval_s: float = 0.2
    #: On the first start (no workspace yet) this workspace and an operator key are created.
    first_workspace: str = FIRST_WORKSPACE
    #: How long a graceful shutdown waits for deliveries of pre-call webhooks.
    webhook_grace_s: float = 2.0
    #: Durable delivery's workers in this process (default: ``$VOICEFN_JOBS_*``).
    jobs: JobSettings = field(default_factory=JobSettings.from_env)
    #: The largest request body any route reads (larger: 413 before the route runs).
    max_body_bytes: int = 32 << 20
