"""The journal's disk work on one thread of its own, so the event loop never waits on the disk.

Appending to a file is usually a few microseconds, but on a shared filesystem a write that
dirties the inode can wait for the filesystem's journal commit, which another process's ``fsync``
(a database, say) may hold for milliseconds or more. Here writes queue to a single thread that
does every file operation in order and coalesces what is queued into one ``write`` per file; each
caller gets a future that is done once its bytes are in the page cache (which survives
``kill -9`` of this process).

Under load the thread is woken (and the GIL passed to it) once per batch, not once per
execution: writes are gathered on the loop and handed to the thread at the end of the loop's
turn when it is idle, else as soon as it reports the batch it has (so a batch grows with the
load, and a lone write waits for nothing); every batch's futures are settled by one callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from pathlib import Path
from typing import Literal

_Write = tuple[Path, bytes, "asyncio.Future[None]"]
_Op = tuple[Literal["write"], list[_Write]] | tuple[Literal["drop"], Path]
_STOP = None


Outcome = tuple[list["asyncio.Future[None]"], OSError | None]


def _settle(outcomes: list[Outcome]) -> None:
    for futures, error in outcomes:
        for future in futures:
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)


class JournalWriter:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._gathered: list[_Write] = []  # written, not yet handed off
        self._in_flight = 0  # batches handed off and not yet reported done
        self._thread = threading.Thread(target=self._run, name="voicefn-journal", daemon=True)
        self._thread.start()

    def write(self, path: Path, data: bytes) -> asyncio.Future[None]:
        """Append ``data`` to ``path`` (created 0600 on first use); done once written. Call it
        on the loop's thread."""
        future: asyncio.Future[None] = self._loop.create_future()
        if not self._gathered and not self._in_flight:
            self._loop.call_soon(self.hand_off)
        self._gathered.append((path, data, future))
        return future

    def hand_off(self) -> None:
        """Pass what was written so far to the thread."""
        if self._gathered:
            gathered, self._gathered = self._gathered, []
            self._in_flight += 1
            self._queue.put(("write", gathered))

    def _done(self, outcomes: list[Outcome], batches: int) -> None:
        """On the loop: the thread wrote ``batches`` batches."""
        self._in_flight -= batches
        _settle(outcomes)
        if not self._in_flight:
            self.hand_off()  # what gathered meanwhile

    def drop(self, path: Path) -> None:
        """Close and delete ``path`` after every write made before."""
        self.hand_off()
        self._queue.put(("drop", path))

    def stop(self) -> None:
        """Finish what was handed off, then end the thread (call :meth:`hand_off` on the loop
        first; this may run on another thread)."""
        self._queue.put(_STOP)
        self._thread.join()

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        files: dict[Path, int] = {}
        while True:
            ops = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while len(ops) < 4096:
                    ops.append(self._queue.get_nowait())
            pending: dict[Path, list[tuple[bytes, asyncio.Future[None]]]] = {}
            outcomes: list[Outcome] = []
            batches = 0
            for op in ops:
                if op is _STOP:
                    self._flush(pending, files, outcomes)
                    self._report(outcomes, batches)
                    for fd in files.values():
                        os.close(fd)
                    return
                if op[0] == "write":
                    batches += 1
                    for path, data, future in op[1]:
                        pending.setdefault(path, []).append((data, future))
                else:
                    self._flush(pending, files, outcomes)
                    if op[1] in files:
                        os.close(files.pop(op[1]))
                    with contextlib.suppress(FileNotFoundError):
                        op[1].unlink()
            self._flush(pending, files, outcomes)
            self._report(outcomes, batches)

    def _flush(
        self,
        pending: dict[Path, list[tuple[bytes, asyncio.Future[None]]]],
        files: dict[Path, int],
        outcomes: list[Outcome],
    ) -> None:
        """Write what is pending, one ``write`` per file; note each file's outcome."""
        for path, items in pending.items():
            error: OSError | None = None
            try:
                fd = files.get(path)
                if fd is None:
                    fd = files[path] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                data = b"".join(d for d, _ in items)
                while data:
                    written = os.write(fd, data)
                    data = data[written:]
            except OSError as exc:
                error = exc
            outcomes.append(([future for _, future in items], error))
        pending.clear()

    def _report(self, outcomes: list[Outcome], batches: int) -> None:
        if outcomes or batches:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                self._loop.call_soon_threadsafe(self._done, outcomes, batches)
