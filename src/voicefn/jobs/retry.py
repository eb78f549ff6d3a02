"""When to try again: exponential backoff with full jitter, ``Retry-After``, what is final."""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass

#: 4xx answers that mean "not now" rather than "never".
RETRYABLE_4XX = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_attempts`` attempts in all (a job's own ``max_attempts`` wins); the n-th retry waits
    a random time in ``[0, min(max_delay_s, base_delay_s * 2**(n-1))]`` (full jitter), or what the
    receiver's ``Retry-After`` asks, capped at ``max_retry_after_s``."""

    max_attempts: int = 8
    base_delay_s: float = 1.0
    max_delay_s: float = 3600.0
    max_retry_after_s: float = 86400.0

    def delay_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """How long to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.max_retry_after_s)
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** min(attempt - 1, 60))
        return random.uniform(0, ceiling)


def final_status(status: int) -> bool:
    """An answer that retrying will not change: a 4xx other than 408/425/429."""
    return 400 <= status < 500 and status not in RETRYABLE_4XX


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
