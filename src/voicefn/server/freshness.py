"""Other processes' changes, seen from the very next request.

The catalog (:mod:`voicefn.server.catalog`) drops what this process changes at commit and learns
other processes' changes from the change feed, which it polls every ``change_poll_s``. Processes
that share a data directory (several ``voicefn serve`` on one host, the usual way to use more
cores) also share a small file, ``<data_dir>/changes.generation``, mapped into memory: a process
that commits a change writes a fresh random value into it after the commit. Every request
compares it with the value it last saw: a memory read, nothing more. When it differs, the request
reads the change feed (once, for every request waiting) before it looks anything up, so a key
revoked or a function changed through one process is in force for the next request on any other.

Processes on other hosts (one PostgreSQL, separate data directories) still learn changes from
the periodic poll. A process's own commits move the value too, so its next request reads the
feed once more (one small query, nothing to apply: it applied its own changes at commit).
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import secrets
from pathlib import Path

from .catalog import ChangeFeed
from .platform import Platform

log = logging.getLogger("voicefn.server")

FILE = "changes.generation"
_SIZE = 8


class SharedGeneration:
    """An 8-byte value in a file mapped by every process of one data directory."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _SIZE:
                os.ftruncate(fd, _SIZE)
            self._map = mmap.mmap(fd, _SIZE)
        finally:
            os.close(fd)

    def read(self) -> bytes:
        return self._map[:_SIZE]

    def bump(self) -> None:
        """A new value (random: two processes bumping at once still leave a new one)."""
        self._map[:_SIZE] = secrets.token_bytes(_SIZE)

    def close(self) -> None:
        self._map.close()


class Freshness:
    """Created with the app, started once the platform has started (it reads the platform's
    one change feed: its periodic poll and these catch-ups take turns)."""

    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        self._generation: SharedGeneration | None = None
        self._feed: ChangeFeed | None = None
        self._seen = b""
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        platform = self._platform
        generation = SharedGeneration(platform.config.data_dir / FILE)
        self._seen = generation.read()
        self._feed = platform.feed
        self._generation = generation
        platform.store.subscribe(lambda _: self._bump())

    def _bump(self) -> None:
        if self._generation is not None:
            self._generation.bump()

    def stop(self) -> None:
        generation, self._generation = self._generation, None
        if generation is not None:
            generation.close()

    def stale(self) -> bool:
        """Whether a process may have changed something since this one last looked (cheap)."""
        generation = self._generation
        return generation is not None and generation.read() != self._seen

    async def catch_up(self) -> None:
        """Read the change feed if the shared value moved (one read for all who wait)."""
        async with self._lock:
            generation, feed = self._generation, self._feed
            if generation is None or feed is None:
                return
            value = generation.read()
            if value == self._seen:
                return  # a request before this one read the feed after the change
            # Seen only once read: until then every request stays stale and waits here.
            # A feed that cannot be read now is marked seen too (the periodic poll retries and
            # clears the caches once it reads again): requests do not each hit a failing database.
            await feed.read()
            self._seen = value
