"""How ``voicefn serve`` runs its workers: from ``VOICEFN_JOBS_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"${name} must be a number, not {raw!r}") from None


@dataclass(frozen=True, slots=True)
class JobSettings:
    """``concurrency`` deliveries at once per process (0: this process runs no worker, others
    deliver); ``max_attempts`` before dead-letter; the backoff's base and cap; the claim lease;
    how often an idle worker looks for due jobs (PostgreSQL ``NOTIFY`` wakes it sooner)."""

    concurrency: int = 64
    max_attempts: int = 8
    base_delay_s: float = 1.0
    max_delay_s: float = 3600.0
    lease_s: float = 30.0
    poll_s: float = 0.2

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> JobSettings:
        env = os.environ if environ is None else environ
        d = cls()
        return cls(
            concurrency=int(_number(env, "VOICEFN_JOBS_CONCURRENCY", d.concurrency)),
            max_attempts=max(1, int(_number(env, "VOICEFN_JOBS_MAX_ATTEMPTS", d.max_attempts))),
            base_delay_s=_number(env, "VOICEFN_JOBS_BASE_DELAY_S", d.base_delay_s),
            max_delay_s=_number(env, "VOICEFN_JOBS_MAX_DELAY_S", d.max_delay_s),
            lease_s=_number(env, "VOICEFN_JOBS_LEASE_S", d.lease_s),
            poll_s=_number(env, "VOICEFN_JOBS_POLL_S", d.poll_s),
        )
