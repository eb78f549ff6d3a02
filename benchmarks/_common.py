"""What the benchmarks share: figures, helper processes, bounded runs, the test function, output.

The benchmarks are run as scripts (``python benchmarks/<name>.py``), so their own folder is first
on ``sys.path`` and they import this module as ``_common``. Standard library only at import time:
``_calls.py`` imports it in the call benchmarks' processes; httpx and voicefn load only where used.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import select
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    import httpx

LOOPBACK_SERVER = Path(__file__).with_name("_loopback_server.py")

# ------------------------------------------------------------------------------ figures


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    return float(sorted_values[max(math.ceil(p / 100 * len(sorted_values)) - 1, 0)])


def environment(**versions: Any) -> dict[str, Any]:
    """The machine and software a run's figures belong to: Python, ``versions``, CPUs, platform."""
    return {
        "python": platform.python_version(),
        **versions,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def environment_line(env: dict[str, Any], *packages: str) -> str:
    """``<package> <version> / ... / <implementation> <python> / <n> CPUs``."""
    python = f"{env.get('implementation', 'Python')} {env['python']}"
    return " / ".join(
        [*(f"{name} {env[name]}" for name in packages), python, f"{env['cpus']} CPUs"]
    )


def emit(
    data: dict[str, Any], as_json: bool, print_table: Callable[[dict[str, Any]], None]
) -> None:
    """The results on stdout: as indented JSON, or as ``print_table`` lays them out."""
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        print_table(data)


class Budget:
    """``--max-seconds``: no new round or sample starts once it is spent."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.exhausted = False  # a check found it spent: the run was cut short

    def spent(self) -> bool:
        if time.monotonic() >= self.deadline:
            self.exhausted = True
            return True
        return False


# ------------------------------------------------------------------------------ processes


class HelperProcess:
    """A server process that prints ``<ready> <number>...`` on stdout once it listens.

    ``numbers`` holds what followed the word (the ports). Closing its stdin stops it.
    """

    def __init__(self, argv: list[str], ready: str, what: str, timeout: float = 15.0) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        ready_to_read, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode().strip() if ready_to_read else ""
        if not line.startswith(ready + " "):
            self.close()
            raise RuntimeError(f"{what} did not start (said {line!r})")
        self.numbers = [int(word) for word in line.split()[1:]]

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LoopbackServer(HelperProcess):
    """``_loopback_server.py`` on 127.0.0.1 in its own process; ``port`` once it listens."""

    def __init__(self, max_seconds: float) -> None:
        argv = [sys.executable, str(LOOPBACK_SERVER), "--host", "127.0.0.1", "--port", "0"]
        super().__init__([*argv, "--max-seconds", str(max_seconds)], "PORT", "the loopback server")
        self.port = self.numbers[0]


# ------------------------------------------------------------------------------ clients


def check_order_function(url: str, **action: Any) -> dict[str, Any]:
    """The benchmarks' HTTP function ``check_order(order_id)``: a POST with a JSON body."""
    return {
        "name": "check_order",
        "description": "Look up an order's status.",
        "parameters": check_order_parameters(),
        "action": {
            "type": "http",
            "method": "POST",
            "url": url,
            "param": {"order_id": "%(order_id)s"},
            **action,
        },
    }


def check_order_parameters() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"order_id": {"type": "string", "description": "the order id"}},
        "required": ["order_id"],
    }


def pooled_client(max_connections: int) -> httpx.AsyncClient:
    """A bare ``httpx.AsyncClient`` with the Executor's limits and options (default transport)."""
    import httpx

    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    return httpx.AsyncClient(
        limits=limits, follow_redirects=True, max_redirects=5, timeout=None, trust_env=False
    )


#: One request of a side being measured: True when it succeeded.
Call = Callable[[], Awaitable[bool]]


async def sequential(call: Call, count: int, samples: list[int]) -> int:
    """``count`` requests one after another; appends each one's time; returns failures."""
    failures = 0
    clock = time.perf_counter_ns
    for _ in range(count):
        t0 = clock()
        ok = await call()
        samples.append(clock() - t0)
        failures += not ok
    return failures


async def concurrent(call: Call, total: int, concurrency: int) -> tuple[float, list[int], int]:
    """``total`` requests from ``concurrency`` workers: (requests/s, per-request ns, failures)."""
    samples: list[int] = []
    remaining = total
    failures = 0
    clock = time.perf_counter_ns

    async def worker() -> None:
        nonlocal remaining, failures
        while remaining > 0:
            remaining -= 1
            t0 = clock()
            ok = await call()
            samples.append(clock() - t0)
            failures += not ok

    started = clock()
    async with asyncio.TaskGroup() as tg:
        for _ in range(min(concurrency, total)):
            tg.create_task(worker())
    return total / ((clock() - started) / 1e9), samples, failures
