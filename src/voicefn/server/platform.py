"""Everything one server process holds: the store, the execute path's catalog, the shared
Executors, the recorder and the metrics; started and stopped by the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson

from ..context import CallContext
from ..jobs.service import sign_precall_webhooks, start_platform_worker
from ..jobs.worker import JobWorker
from ..redaction import Redactor
from ..results import ToolResult
from ..store import ExecutionRecord, NewApiKey, SecretBox, Store, Workspace, open_store
from ..store.database import database_url
from ..store.ids import ordered_id, quick_uuid
from . import logs
from .catalog import Catalog, ChangeFeed, RunnableAgent, RunnableFunction
from .config import ServerConfig
from .executors import ExecutorPool
from .metrics import Metrics
from .recorder import Recorder

log = logging.getLogger("voicefn.server")

#: What an execution record keeps of what the LLM read.
RESULT_EXCERPT = 4096


def _timings(result: ToolResult) -> dict[str, Any]:
    t = result.timings
    return {
        "started_at": t.started_at,
        "bind_ms": t.bind_ms,
        "render_ms": t.render_ms,
        "time_to_request_ms": t.time_to_request_ms,
        "request_ms": t.request_ms,
        "total_ms": t.total_ms,
    }


def _scrubbed(value: Any, fn: RunnableFunction) -> Any:
    """``value`` with the function's secrets replaced; a quick search of its JSON text first,
    so the usual case (no secret in it) costs no walk."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return fn.redactor.text(value)
    if fn.json_safe:
        try:
            text = orjson.dumps(value).decode()
        except TypeError:
            return _scrub(value, fn.redactor)
        if fn.redactor.text(text) == text:
            return value
    return _scrub(value, fn.redactor)


def _scrub(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, str):
        return redactor.text(value)
    if isinstance(value, Mapping):
        return {k: _scrub(v, redactor) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, redactor) for v in value]
    return value


class Platform:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.executors = ExecutorPool(
            config.webhook_grace_s, on_new=lambda ex: sign_precall_webhooks(ex, self)
        )
        self.first_key: NewApiKey | None = None
        self._store: Store | None = None
        self._catalog: Catalog | None = None
        #: the one change feed (polled every change_poll_s; freshness reads it on demand too)
        self.feed: ChangeFeed | None = None
        self._recorder: Recorder | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.jobs: JobWorker | None = None  # durable delivery (voicefn.jobs)
        self.ready = False

    @property
    def store(self) -> Store:
        assert self._store is not None, "the platform has not started"
        return self._store

    @property
    def catalog(self) -> Catalog:
        assert self._catalog is not None, "the platform has not started"
        return self._catalog

    @property
    def recorder(self) -> Recorder:
        assert self._recorder is not None, "the platform has not started"
        return self._recorder

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        config = self.config
        env = {"VOICEFN_SECRET_KEY": config.secret_key} if config.secret_key else None
        box = SecretBox.load(config.data_dir, env)
        url = database_url(config.data_dir, config.database_url)
        self._store = await open_store(url, box)
        self.first_key = await ensure_first_workspace(self._store, config.first_workspace)
        self._catalog = Catalog(self._store, config.egress)
        catalog = self._catalog
        self._store.subscribe(lambda ev: catalog.changed(ev.workspace_id, ev.kind, ev.ref))
        feed = self.feed = ChangeFeed(self._store, self._catalog, config.change_poll_s)
        await feed.start()
        self._recorder = Recorder(
            self._store,
            config.data_dir / "journal",
            batch=config.record_batch,
            interval_s=config.record_interval_s,
            on_stored=self._stored,
        )
        await self._recorder.start()
        self._tasks = [
            asyncio.create_task(feed.run(), name="voicefn-change-feed"),
            asyncio.create_task(self._recorder.run(), name="voicefn-recorder"),
            asyncio.create_task(self._prune(), name="voicefn-prune"),
        ]
        self.jobs = await start_platform_worker(self, config.jobs)
        self.ready = True

    async def stop(self) -> None:
        """After the server stopped taking requests (in-flight ones have finished)."""
        self.ready = False
        if self.jobs is not None:
            await self.jobs.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._recorder is not None:
            await self._recorder.close()
        await self.executors.aclose()
        if self._store is not None:
            await self._store.close()
        logs.flush()

    def _stored(self, count: int) -> None:
        self.metrics.recorded.inc(count)
        self.metrics.recorder_pending.set(self.recorder.pending)

    async def _prune(self) -> None:
        """The change feed needs only the last few minutes; drop older entries hourly."""
        while True:
            await asyncio.sleep(3600)
            try:
                async with self.store.write() as repos:
                    await repos.changes.prune(time.time_ns() // 1000 - 3600 * 1_000_000)
            except Exception as exc:
                log.warning("pruning the change feed failed: %s", exc)

    # ------------------------------------------------------------------ running

    async def run(
        self,
        ws: Workspace,
        agent: RunnableAgent,
        fn: RunnableFunction,
        *,
        arguments: str | Mapping[str, Any] | None,
        context: CallContext,
        tool_call_id: str | None,
        source: str,
    ) -> tuple[str, ToolResult]:
        """Run a function through the workspace's Executor and record it; never waits for the
        database on a warm path. Returns the execution id and the result."""
        executor = self.executors.get(await self.catalog.policy(ws))
        result = await executor.run(fn.function, arguments, context, tool_call_id=tool_call_id)
        if fn.redactor:
            # The engine scrubs the function's own secrets; the agent's secret variables (in a
            # header or body through {variable}) are only known here.
            result.content = fn.redactor.text(result.content)
            result.data = _scrubbed(result.data, fn)
        execution_id, journaled = self.record(ws, fn, result, context, tool_call_id, source)
        try:
            await journaled  # acknowledged only once it survives a crash of this process
        except OSError as exc:  # the journal's disk: never fail the execution for it
            log.error("journaling execution %s failed: %s", execution_id, exc)
        return execution_id, result

    def record(
        self,
        ws: Workspace,
        fn: RunnableFunction,
        result: ToolResult,
        context: CallContext,
        tool_call_id: str | None,
        source: str,
    ) -> tuple[str, asyncio.Future[None]]:
        """Hand an execution to the recorder (journal now, database soon): its id, and a future
        done once it is journaled."""
        started_us = int(result.timings.started_at * 1_000_000)
        execution_id = ordered_id("ex", started_us)
        redactor = fn.redactor
        r = result.request
        request = (
            {"method": r.method, "url": r.url, "headers": r.headers, "body": r.body}
            if r is not None
            else None
        )
        arguments: Any = result.arguments
        content = result.content[:RESULT_EXCERPT]
        if redactor:
            request, arguments = _scrubbed(request, fn), _scrubbed(arguments, fn)
            content = redactor.text(content)
        record = ExecutionRecord(
            id=execution_id,
            agent_id=fn.agent_id,
            function_id=fn.id,
            function_name=result.function,
            function_version=fn.version,
            source=source,
            ok=result.ok,
            status=result.status,
            error=result.error,
            arguments=arguments,
            request=request,
            result=content,
            timings=_timings(result),
            call_sid=context.call_sid,
            tool_call_id=tool_call_id,
            started_us=started_us,
            total_ms=result.timings.total_ms,
        )
        journaled = self.recorder.record(ws, record)
        self.metrics.execution(
            ws.id,
            result.function,
            source,
            "ok" if result.ok else (result.error or "error"),
            result.timings.total_ms / 1000,
        )
        self.metrics.recorder_pending.set(self.recorder.pending)
        return execution_id, journaled

    def call_context(self, ws: Workspace, agent: RunnableAgent, **call: Any) -> CallContext:
        """The CallContext of a run: the agent's variables under the call's, tenant set."""
        variables = call.pop("variables", None) or {}
        execution_id = call.pop("execution_id", None) or quick_uuid()
        return CallContext(
            agent_id=agent.id,
            execution_id=execution_id,
            variables={**agent.variables, **variables} if agent.variables else variables,
            webhook_url=agent.webhook_url,
            workspace_id=ws.id,
            **call,
        )


async def ensure_first_workspace(store: Store, name: str) -> NewApiKey | None:
    """On a database with no workspace: create ``name`` and an operator key (returned once)."""
    async with store.read() as repos:
        if await repos.workspaces.count():
            return None
    from ..store import NameTaken

    try:
        async with store.write() as repos:
            if await repos.workspaces.count():
                return None
            ws = await repos.workspaces.create(name)
            return await repos.keys.create(ws, "first key", operator=True)
    except NameTaken:
        return None  # another process started at the same moment and made it
