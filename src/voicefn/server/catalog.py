"""The execute path's memory: API keys, agents, functions (per version) and egress policies.

A request on the hot path costs dictionary lookups; the database is read once per version (a
cache miss), never on a hit. Every write this process commits drops what it changed at once (the
store tells the catalog); writes of other processes arrive through the change feed (see
:class:`ChangeFeed`) within ``change_poll_s``. A load that raced a change is used once but not
kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..redaction import Redactor
from ..spec import Function
from ..store import AgentRecord, FunctionRecord, Principal, Store, Workspace
from ..store.ids import key_hash
from ..store.records import ChangeEvent
from ..store.secrets import secret_values, unseal
from .config import EgressDefaults
from .executors import Policy

log = logging.getLogger("voicefn.server")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class RunnableAgent:
    id: str
    name: str
    language: str
    variables: dict[str, Any]  #: secrets included
    webhook_url: str | None
    secrets: tuple[str, ...]  #: the secret variables' values, for scrubbing records


@dataclass(frozen=True, slots=True)
class RunnableFunction:
    id: str
    agent_id: str
    version: int
    function: Function  #: secrets included: for the Executor only
    #: scrubs the function's and its agent's secrets out of what is recorded
    redactor: Redactor
    #: every secret appears verbatim in JSON text (no quote, backslash or control character),
    #: so a search of the serialised record can rule secrets out before a full walk
    json_safe: bool = True


def runnable_agent(record: AgentRecord) -> RunnableAgent:
    doc = unseal(record.document, record.secrets)
    return RunnableAgent(
        record.id,
        record.name,
        str(doc.get("language") or "en"),
        dict(doc.get("variables") or {}),
        doc.get("webhook_url"),
        tuple(secret_values(record.secrets)),
    )


def runnable_function(record: FunctionRecord, agent: RunnableAgent) -> RunnableFunction:
    function = Function.model_validate(unseal(record.document, record.secrets))
    secrets = [*secret_values(record.secrets), *agent.secrets]
    json_safe = all(s.isprintable() and '"' not in s and "\\" not in s for s in secrets)
    return RunnableFunction(
        record.id, agent.id, record.version, function, Redactor(secrets), json_safe
    )


class _Cache(Generic[K, V]):
    """A map filled by loaders, with single-flight loads and groups that can be dropped."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._values: dict[K, V] = {}
        self._groups: dict[Hashable, set[K]] = {}
        self._generation: dict[Hashable, int] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}
        self._max = max_entries

    def peek(self, key: K) -> V | None:
        return self._values.get(key)

    async def get(self, key: K, group: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        if key in self._values:
            return self._values[key]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        generation = self._generation.get(group, 0)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._loading[key]
        if self._generation.get(group, 0) == generation:
            if len(self._values) >= self._max:
                self.clear()
            self._values[key] = value
            self._groups.setdefault(group, set()).add(key)
        future.set_result(value)
        return value

    def drop(self, group: Hashable) -> None:
        self._generation[group] = self._generation.get(group, 0) + 1
        for key in self._groups.pop(group, ()):
            self._values.pop(key, None)

    def clear(self) -> None:
        for group in list(self._groups):
            self.drop(group)
        self._values.clear()


class Catalog:
    def __init__(self, store: Store, defaults: EgressDefaults) -> None:
        self._store = store
        self._defaults = defaults
        self._keys: _Cache[str, Principal | None] = _Cache()
        self._agents: _Cache[tuple[str, str], RunnableAgent | None] = _Cache()
        self._functions: _Cache[tuple[str, str, str], RunnableFunction | None] = _Cache()
        self._policies: _Cache[str, Policy] = _Cache()

    # ------------------------------------------------------------------ lookups

    async def principal(self, secret: str) -> Principal | None:
        digest = key_hash(secret)
        found = self._keys.peek(digest)
        if found is not None:
            return found

        async def load() -> Principal | None:
            async with self._store.read() as repos:
                return await repos.keys.authenticate(secret)

        principal = await self._keys.get(digest, ("key", digest), load)
        if principal is None:
            self._keys.drop(("key", digest))  # unknown keys are not remembered
        return principal

    async def agent(self, ws: Workspace, agent_id: str) -> RunnableAgent | None:
        async def load() -> RunnableAgent | None:
            async with self._store.read() as repos:
                record = await repos.agents.get(ws, agent_id)
            return runnable_agent(record) if record is not None else None

        key = (ws.id, agent_id)
        return await self._agents.get(key, key, load)

    async def function(
        self, ws: Workspace, agent: RunnableAgent, name: str
    ) -> RunnableFunction | None:
        async def load() -> RunnableFunction | None:
            async with self._store.read() as repos:
                record = await repos.functions.by_name(ws, agent.id, name)
            return runnable_function(record, agent) if record is not None else None

        return await self._functions.get((ws.id, agent.id, name), (ws.id, agent.id), load)

    async def policy(self, ws: Workspace) -> Policy:
        async def load() -> Policy:
            async with self._store.read() as repos:
                settings = await repos.settings.get(ws)
            return Policy.effective(self._defaults, settings)

        return await self._policies.get(ws.id, ws.id, load)

    # ------------------------------------------------------------------ changes

    def changed(self, workspace_id: str, kind: str, ref: str) -> None:
        """Forget what a change made stale: called by the store right after this process
        commits one, and by the change feed for other processes' changes."""
        if kind == "key":
            self._keys.drop(("key", ref))
        elif kind == "agent":
            self._agents.drop((workspace_id, ref))
            self._functions.drop((workspace_id, ref))
        elif kind == "functions":
            self._functions.drop((workspace_id, ref))
        elif kind == "settings":
            self._policies.drop(workspace_id)

    def clear(self) -> None:
        for cache in (self._keys, self._agents, self._functions, self._policies):
            cache.clear()


class ChangeFeed:
    """Reads the ``changes`` table every ``interval`` seconds and tells the catalog.

    Sequence numbers can commit out of order (PostgreSQL hands them out before commit), so a
    number missing from what was read is re-read for ``grace`` seconds before it is given up.
    """

    def __init__(
        self, store: Store, catalog: Catalog, interval: float, grace: float = 10.0
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._interval = interval
        self._grace = grace
        self._max = 0
        self._gaps: dict[int, float] = {}
        self._failing = False
        self._lock = asyncio.Lock()  # the periodic poll and a request's catch-up (freshness)

    async def start(self) -> None:
        async with self._store.read() as repos:
            self._max = await repos.changes.latest()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.read()

    async def read(self) -> bool:
        """Poll once; never raises. False when the feed cannot be read now (logged once until
        it can again; then every cache is cleared: what was missed meanwhile is unknown)."""
        try:
            await self.poll()
        except Exception as exc:
            if not self._failing:
                log.warning("change feed: cannot read changes (%s); retrying", exc)
            self._failing = True
            return False
        if self._failing:
            log.info("change feed: reading again; caches cleared")
            self._catalog.clear()
        self._failing = False
        return True

    async def poll(self) -> list[ChangeEvent]:
        """The changes since the last poll, told to the catalog (one poll at a time)."""
        async with self._lock:
            return await self._poll()

    async def _poll(self) -> list[ChangeEvent]:
        floor = min(self._gaps) - 1 if self._gaps else self._max
        async with self._store.read() as repos:
            events = await repos.changes.since(floor, limit=5000)
        now = time.monotonic()
        fresh: list[ChangeEvent] = []
        for ev in events:
            if ev.seq in self._gaps:
                del self._gaps[ev.seq]
            elif ev.seq > self._max:
                for missing in range(self._max + 1, ev.seq):
                    self._gaps[missing] = now
                self._max = ev.seq
            else:
                continue
            fresh.append(ev)
            if ev.origin != self._store.origin:  # this process applied its own at commit
                self._catalog.changed(ev.workspace_id, ev.kind, ev.ref)
        for seq, seen in list(self._gaps.items()):
            if now - seen > self._grace:
                del self._gaps[seq]
        return fresh
