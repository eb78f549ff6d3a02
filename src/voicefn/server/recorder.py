"""Recording executions off the hot path, without losing an acknowledged one.

``record()`` is cheap and never waits: it hands the execution, as one JSON line, to the journal
thread (:mod:`voicefn.server.journal`) and queues it; the caller acknowledges the execution once
the returned future is done (the line is in the page cache, which survives ``kill -9``). A background task inserts queued executions in batches and deletes each journal
segment once everything in it is stored. A process that starts finds the journals of processes
that died (their lock is free), inserts what they hold (an execution already stored is skipped)
and deletes them. Recording never blocks or fails an execution: if the database is down, rows
wait (in memory up to a bound, on disk always) and are retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path

import orjson

from ..store import ExecutionRecord, Store, Workspace, jsontext
from .journal import JournalWriter

log = logging.getLogger("voicefn.recorder")

Row = tuple[Workspace, ExecutionRecord]
SEGMENT_ROWS = 5000
MAX_IN_MEMORY = 100_000


_FIELDS = tuple(f.name for f in fields(ExecutionRecord))


def _encode(ws: Workspace, record: ExecutionRecord) -> bytes:
    line = {"ws": [ws.id, ws.name], "ex": {f: getattr(record, f) for f in _FIELDS}}
    try:
        return orjson.dumps(line) + b"\n"
    except TypeError:  # an integer beyond 64 bits, a lone surrogate: JSON text holds both
        return json.dumps(line, ensure_ascii=True, default=str).encode() + b"\n"


def _odd(text: str | None) -> bool:
    return text is not None and ("\x00" in text or not text.isascii())


def _cleaned(row: Row) -> Row:
    """The text columns as any database stores them (JSON columns: see store.jsontext)."""
    ws, r = row
    if not (_odd(r.result) or _odd(r.error) or _odd(r.call_sid) or _odd(r.tool_call_id)):
        return row
    return ws, replace(
        r,
        result=jsontext.text(r.result) or "",
        error=jsontext.text(r.error),
        call_sid=jsontext.text(r.call_sid),
        tool_call_id=jsontext.text(r.tool_call_id),
    )


def _decode(line: bytes) -> Row | None:
    try:
        data = orjson.loads(line)
        ws_id, ws_name = data["ws"]
        return Workspace(ws_id, ws_name), ExecutionRecord(**data["ex"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None  # a line cut short by the crash itself: never acknowledged


def _read(path: Path) -> list[Row]:
    return [row for row in map(_decode, path.read_bytes().splitlines()) if row is not None]


class _Segment:
    """One journal file (written by the journal thread) and the rows recorded into it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[Row] = []


class Recorder:
    def __init__(
        self,
        store: Store,
        journal_root: Path,
        *,
        batch: int = 500,
        interval_s: float = 0.05,
        on_stored: Callable[[int], None] | None = None,
    ) -> None:
        self._store = store
        self._root = journal_root
        self._dir = journal_root / uuid.uuid4().hex
        self._batch = batch
        self._interval = interval_s
        self._on_stored = on_stored
        self._lock_fd = -1
        self._writer: JournalWriter | None = None
        self._current: _Segment | None = None
        self._sealed: list[_Segment] = []  # full segments waiting to be stored, oldest first
        self._on_disk: list[Path] = []  # segments shed from memory while the database was away
        self._count = 0
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()
        self.failures = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> int:
        """Take this process's journal and store what dead processes left; returns how many
        executions were recovered."""
        self._dir.mkdir(parents=True, mode=0o700)
        self._lock_fd = os.open(self._dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._writer = JournalWriter(asyncio.get_running_loop())
        self._current = self._new_segment()
        return await self._recover()

    async def close(self) -> None:
        """Store everything queued, then remove this process's journal."""
        await self.flush()
        if self._writer is not None:
            self._writer.hand_off()
            await asyncio.to_thread(self._writer.stop)
        if self.pending or self._on_disk:
            log.warning("recorder: executions stay in the journal for the next start")
            os.close(self._lock_fd)  # the next process to start stores them
            return
        os.close(self._lock_fd)
        shutil.rmtree(self._dir, ignore_errors=True)

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            await self.flush()

    # ------------------------------------------------------------------ hot path

    def record(self, ws: Workspace, record: ExecutionRecord) -> asyncio.Future[None]:
        """Queue the execution; the future is done once it is journaled (acknowledge after)."""
        segment, writer = self._current, self._writer
        if segment is None or writer is None:
            raise RuntimeError("Recorder.start() first")
        written = writer.write(segment.path, _encode(ws, record))
        segment.rows.append((ws, record))
        self._count += 1
        if len(segment.rows) >= SEGMENT_ROWS:
            self._seal()
        if self._count >= self._batch:
            self._wake.set()
        return written

    @property
    def pending(self) -> int:
        return self._count

    # ------------------------------------------------------------------ storing

    async def flush(self) -> None:
        """Store everything recorded so far (waits for a flush already running)."""
        async with self._flushing:
            if self._current is not None and self._current.rows:
                self._seal()
            while self._sealed:
                segment = self._sealed[0]
                try:
                    await self._store_rows(segment.rows)
                except Exception as exc:
                    self.failures += 1
                    log.warning("recorder: cannot store %d executions yet (%s)", self._count, exc)
                    self._shed()
                    return
                self._count -= len(segment.rows)
                assert self._writer is not None
                self._writer.drop(segment.path)
                self._sealed.pop(0)
                if self._on_stored is not None:
                    self._on_stored(len(segment.rows))
            while self._on_disk:
                path = self._on_disk[0]
                try:
                    await self._store_rows(_read(path))
                except Exception:
                    self.failures += 1
                    return
                assert self._writer is not None
                self._writer.drop(path)
                self._on_disk.pop(0)

    async def _store_rows(self, rows: list[Row]) -> None:
        """Insert in batches; the cleaning (off the hot path) keeps one odd value the engine
        passed through from failing a whole batch on PostgreSQL."""
        for start in range(0, len(rows), self._batch):
            batch = [_cleaned(r) for r in rows[start : start + self._batch]]
            async with self._store.write() as repos:
                await repos.executions.add(batch)

    def _seal(self) -> None:
        assert self._current is not None
        self._sealed.append(self._current)
        self._current = self._new_segment()

    def _new_segment(self) -> _Segment:
        return _Segment(self._dir / f"{uuid.uuid4().hex}.jsonl")

    def _shed(self) -> None:
        """While the database is away, keep at most MAX_IN_MEMORY rows in memory; the rest stay
        only in their journal segments and are stored at the next start."""
        while self._count > MAX_IN_MEMORY and len(self._sealed) > 1:
            segment = self._sealed.pop()
            self._count -= len(segment.rows)
            self._on_disk.insert(0, segment.path)
            log.warning("recorder: %s kept on disk for the next start", segment.path.name)

    async def _recover(self) -> int:
        recovered = 0
        for other in sorted(self._root.iterdir()):
            if other == self._dir or not other.is_dir():
                continue
            lock = other / ".lock"
            try:
                fd = os.open(lock, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its process is alive
                for path in sorted(other.glob("*.jsonl")):
                    rows = _read(path)
                    await self._store_rows(rows)
                    recovered += len(rows)
                    path.unlink()
                shutil.rmtree(other, ignore_errors=True)
            finally:
                os.close(fd)
        if recovered:
            log.info("recorder: stored %d executions a stopped process had recorded", recovered)
        return recovered
