"""``sandbox_latency.py``'s floors: the same function source run without a sandbox.

* Python: compiled and awaited in this process (per call, as the sandbox does), with a minimal
  stand-in ``RunContext`` and a normal pooled ``httpx.AsyncClient`` as ``ctx.http``;
* JavaScript: a plain ``deno run`` process (no bubblewrap, no Worker) with the sandbox Worker's
  globals (the vendored axios/moment/lodash) and its job code path, real ``fetch`` allowed to
  127.0.0.1 only; one JSON line per job on its stdin, the answer on its stdout;
* JavaScript, the isolate floor: a plain ``deno run`` process that runs each job in a FRESH bare
  Worker (``deno.permissions: "none"``, no libraries, no prelude: only the job's code path),
  created when the job arrives and terminated after it; jobs run at once, each in its own Worker.
  What "a fresh isolate per job" costs by itself, whatever the sandbox does around it. Under the
  same one-core cpu quota as a tenant's sandbox process when a cgroup v1 cpu controller is
  writable (root), as the sandbox's processes are.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import itertools
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx


def call_info(tenant: str) -> dict[str, Any]:
    return {
        "agent_id": tenant,
        "call_sid": "CA0123456789",
        "execution_id": "ex-1",
        "from_number": "+15550000001",
        "to_number": "+15550000002",
    }


def call_context(tenant: str) -> dict[str, Any]:
    """What CodeRunner passes besides the function's arguments: the call, then the variables."""
    return {"call": call_info(tenant), "variables": {"plan": "gold"}}


# ------------------------------------------------------------------------------ Python


class _StandInCall:
    """``ctx.call`` outside the sandbox."""

    def __init__(self, data: dict[str, Any]) -> None:
        for key in ("agent_id", "call_sid", "execution_id", "from_number", "to_number"):
            setattr(self, key, data.get(key))


class StandInRunContext:
    """A minimal ``RunContext`` for the in-process floor: variables, call, logger, http."""

    def __init__(
        self,
        variables: dict[str, Any],
        call: dict[str, Any],
        logger: logging.Logger,
        http: httpx.AsyncClient,
    ) -> None:
        self.variables = variables
        self.userdata = variables
        self.call = _StandInCall(call)
        self.logger = logger
        self.http = http


class PythonFloor:
    """The same source, compiled and awaited in this process (per call, like the sandbox)."""

    def __init__(self) -> None:
        self.logger = logging.Logger("function", logging.DEBUG)
        self.logger.addHandler(logging.NullHandler())
        self.client = httpx.AsyncClient(timeout=10.0, follow_redirects=True, trust_env=False)

    async def run(
        self, code: str, entrypoint: str, arguments: dict[str, Any], context: dict[str, Any]
    ) -> Any:
        ctx = StandInRunContext(
            dict(context.get("variables") or {}),
            context.get("call") or {},
            self.logger,
            self.client,
        )
        namespace: dict[str, Any] = {
            "__name__": "__function__",
            "__builtins__": builtins,
            "RunContext": StandInRunContext,
            "httpx": httpx,
            "logger": self.logger,
        }
        exec(compile(code, "<function>", "exec", dont_inherit=True), namespace)
        return await namespace[entrypoint](ctx, **arguments)

    async def aclose(self) -> None:
        await self.client.aclose()


# ------------------------------------------------------------------------------ JavaScript

# The JavaScript floor: a plain Deno process, the sandbox Worker's globals and job code path.
# How both floors run a job: the way the sandbox's Worker does (AsyncFunction + JSON.parse(data)).
JS_RUN_JOB = r"""
async function runJob(msg) {
  const entry = msg.entrypoint;
  const factory = new AsyncFunction(
    "module",
    "exports",
    `${msg.code}\n;return (typeof ${entry} === "function") ? ${entry} : undefined;`,
  );
  const module = { exports: {} };
  let fn = await factory(module, module.exports);
  if (typeof fn !== "function") fn = module.exports?.[entry];
  const value = await fn(JSON.parse(msg.data));
  return { ok: true, json: value === undefined ? "null" : JSON.stringify(value) };
}
""".strip()

JS_FLOOR = r"""
const vendor = Deno.args[0];
const { default: axios } = await import(vendor + "axios.js");
const { default: moment } = await import(vendor + "moment.js");
await import(vendor + "lodash.js");
globalThis.axios = axios;
globalThis.moment = moment;
const AsyncFunction = (async function () {}).constructor;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

%RUN_JOB%

async function write(obj) {
  const bytes = encoder.encode(JSON.stringify(obj) + "\n");
  let off = 0;
  while (off < bytes.length) off += await Deno.stdout.write(bytes.subarray(off));
}

let buf = "";
for await (const chunk of Deno.stdin.readable) {
  buf += decoder.decode(chunk, { stream: true });
  let nl;
  while ((nl = buf.indexOf("\n")) >= 0) {
    const line = buf.slice(0, nl);
    buf = buf.slice(nl + 1);
    let reply;
    try {
      reply = await runJob(JSON.parse(line));
    } catch (err) {
      reply = { ok: false, detail: String(err?.stack ?? err).slice(0, 500) };
    }
    await write(reply);
  }
}
""".replace("%RUN_JOB%", JS_RUN_JOB)


# The isolate floor's main script: one fresh bare Worker per job line, jobs at once (by id).
JS_ISOLATE_FLOOR = r"""
const WORKER = new URL("./isolate_worker.js", import.meta.url);
const encoder = new TextEncoder();
const decoder = new TextDecoder();
let writing = Promise.resolve();

function write(obj) {
  const bytes = encoder.encode(JSON.stringify(obj) + "\n");
  writing = writing.then(async () => {
    let off = 0;
    while (off < bytes.length) off += await Deno.stdout.write(bytes.subarray(off));
  });
  return writing;
}

function runJob(msg) {
  // created when the job arrives, terminated when it answers
  const worker = new Worker(WORKER, { type: "module", deno: { permissions: "none" } });
  return new Promise((resolve) => {
    worker.onmessage = (event) => resolve(event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      resolve({ ok: false, detail: String(event.message) });
    };
    worker.postMessage(msg);
  }).finally(() => worker.terminate());
}

let buf = "";
for await (const chunk of Deno.stdin.readable) {
  buf += decoder.decode(chunk, { stream: true });
  let nl;
  while ((nl = buf.indexOf("\n")) >= 0) {
    const msg = JSON.parse(buf.slice(0, nl));
    buf = buf.slice(nl + 1);
    runJob(msg).then((reply) => write({ id: msg.id, ...reply }));
  }
}
"""

# The bare Worker: no libraries, no prelude; the job's code path as the sandbox's Worker runs it
# (AsyncFunction + JSON.parse(data)), then its answer.
JS_ISOLATE_WORKER = r"""
const AsyncFunction = (async function () {}).constructor;
%RUN_JOB%
self.onmessage = async (event) => {
  try {
    self.postMessage(await runJob(event.data));
  } catch (err) {
    self.postMessage({ ok: false, detail: String(err?.stack ?? err).slice(0, 500) });
  }
};
""".replace("%RUN_JOB%", JS_RUN_JOB)

CPU_PERIOD_US = 20000  # as the sandbox's tenant processes (voicefn.sandbox.javascript._host)


def _own_cpu_cgroup() -> Path | None:
    """This process's cgroup v1 cpu directory, if it may create children there (root)."""
    if os.geteuid() != 0:
        return None
    try:
        with open("/proc/self/cgroup", encoding="ascii") as fh:
            for line in fh:
                parts = line.rstrip("\n").split(":", 2)
                if len(parts) == 3 and "cpu" in parts[1].split(","):
                    path = Path("/sys/fs/cgroup/cpu") / parts[2].lstrip("/")
                    if (path / "cpu.cfs_quota_us").exists() and os.access(path, os.W_OK):
                        return path
    except OSError:
        return None
    return None


def js_vendor_dir() -> Path | None:
    import voicefn.sandbox.javascript as js

    vendor = Path(js.__file__).resolve().parent / "vendor"
    ok = all((vendor / name).is_file() for name in ("axios.js", "moment.js", "lodash.js"))
    return vendor if ok else None


def deno_binary() -> str | None:
    with contextlib.suppress(ImportError, FileNotFoundError, AttributeError):
        import deno  # type: ignore[import-untyped,unused-ignore]

        path = str(deno.find_deno_bin())
        if os.access(path, os.X_OK):
            return path
    venv = Path(sys.executable).parent / "deno"
    if os.access(venv, os.X_OK):
        return str(venv)
    return shutil.which("deno")


# `deno run` as both floors start it: no remote code, no prompt, no config, lock or type check.
DENO_RUN = (
    "run",
    "--no-prompt",
    "--no-remote",
    "--no-npm",
    "--no-config",
    "--no-lock",
    "--no-check",
)


async def _spawn(argv: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    """Start a floor process: JSON lines in on stdin, out on stdout, stderr dropped."""
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        cwd="/",
        env=env,
    )


async def _stop(proc: asyncio.subprocess.Process | None) -> None:
    """End a floor process: its stdin closed, then killed if it has not exited within 5 s."""
    if proc is None:
        return
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), 5)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


class DenoFloor:
    """A plain ``deno run`` process: no bubblewrap, no Worker; one JSON line per job."""

    def __init__(self, deno: str, script: Path, vendor: Path, port: int, denodir: Path) -> None:
        self.argv = [
            deno,
            *DENO_RUN,
            f"--allow-read={script},{vendor}",
            f"--allow-net=127.0.0.1:{port}",
            str(script),
            vendor.as_uri() + "/",
        ]
        self.env = {
            "PATH": "/usr/bin:/bin",
            "NO_COLOR": "1",
            "DENO_DIR": str(denodir),
            "DENO_NO_UPDATE_CHECK": "1",
        }
        self.proc: asyncio.subprocess.Process | None = None
        # one job at a time, like a tenant's sandbox process (and one reader of its stdout)
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self.proc = await _spawn(self.argv, self.env)

    async def run(self, code: str, entrypoint: str, data: dict[str, Any]) -> Any:
        async with self._lock:
            return await self._run(code, entrypoint, data)

    async def _run(self, code: str, entrypoint: str, data: dict[str, Any]) -> Any:
        proc = self.proc
        assert proc is not None
        assert proc.stdin is not None
        assert proc.stdout is not None
        msg = {"code": code, "entrypoint": entrypoint, "data": json.dumps(data)}
        proc.stdin.write(json.dumps(msg).encode() + b"\n")
        await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), 15)
        if not line:
            raise RuntimeError("the floor Deno process exited")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(str(reply.get("detail"))[:300])
        return json.loads(reply["json"])

    async def close(self) -> None:
        proc, self.proc = self.proc, None
        await _stop(proc)


class IsolateFloor:
    """A plain ``deno run`` process that runs each job in a fresh bare Worker (no libraries,
    no prelude, ``permissions: "none"``), created when the job arrives, terminated after it.
    Jobs may run at once (each answer names its job). With ``cpu_quota`` (cores), the process
    is held to that cgroup v1 cpu quota, like a tenant's sandbox process."""

    _ids = itertools.count(1)

    def __init__(self, deno: str, workdir: Path, denodir: Path, cpu_quota: float | None) -> None:
        self.script = workdir / "isolate_floor.js"
        self.worker = workdir / "isolate_worker.js"
        self.argv = [
            deno,
            *DENO_RUN,
            "--no-code-cache",
            "--unstable-worker-options",
            f"--allow-read={self.script},{self.worker}",
            str(self.script),
        ]
        self.env = {
            "PATH": "/usr/bin:/bin",
            "NO_COLOR": "1",
            "DENO_DIR": str(denodir),
            "DENO_NO_UPDATE_CHECK": "1",
        }
        self.cpu_quota = cpu_quota
        self.cgroup: Path | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.reader: asyncio.Task[None] | None = None

    @property
    def quota_note(self) -> str:
        if self.cgroup is None:
            return "no cpu quota"
        burst = ""
        with contextlib.suppress(OSError, ValueError):
            if int((self.cgroup / "cpu.cfs_burst_us").read_text()) > 0:
                burst = " (+ one period's unused quota as burst, as the tenants)"
        return f"cpu quota {self.cpu_quota:g} core{burst}"

    async def start(self) -> None:
        self.script.write_text(JS_ISOLATE_FLOOR)
        self.worker.write_text(JS_ISOLATE_WORKER)
        argv = self.argv
        parent = _own_cpu_cgroup() if self.cpu_quota is not None else None
        if parent is not None and self.cpu_quota is not None:
            group = parent / f"voicefn-bench-isolate-{os.getpid()}"
            try:
                group.mkdir(exist_ok=True)
                (group / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
                quota = max(1000, round(self.cpu_quota * CPU_PERIOD_US))
                (group / "cpu.cfs_quota_us").write_text(str(quota))
                with contextlib.suppress(OSError):  # the same burst as a tenant's, where it exists
                    (group / "cpu.cfs_burst_us").write_text(str(quota))
                self.cgroup = group
                # join the cgroup before exec: every thread of Deno is inside from the start
                argv = [
                    "/bin/sh",
                    "-c",
                    'echo $$ > "$0" && exec "$@"',
                    str(group / "cgroup.procs"),
                    *argv,
                ]
            except OSError:
                with contextlib.suppress(OSError):
                    group.rmdir()
                self.cgroup = None
        self.proc = await _spawn(argv, self.env)
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            reply = json.loads(line)
            waiter = self.waiting.pop(reply.get("id"), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(reply)
        for waiter in self.waiting.values():
            if not waiter.done():
                waiter.set_exception(RuntimeError("the isolate floor's Deno process exited"))
        self.waiting.clear()

    async def run(self, code: str, entrypoint: str, data: dict[str, Any]) -> Any:
        proc = self.proc
        assert proc is not None
        assert proc.stdin is not None
        job = next(self._ids)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[job] = waiter
        msg = {"id": job, "code": code, "entrypoint": entrypoint, "data": json.dumps(data)}
        proc.stdin.write(json.dumps(msg).encode() + b"\n")
        await proc.stdin.drain()
        reply = await asyncio.wait_for(waiter, 15)
        if not reply.get("ok"):
            raise RuntimeError(str(reply.get("detail"))[:300])
        return json.loads(reply["json"])

    async def close(self) -> None:
        proc, self.proc = self.proc, None
        await _stop(proc)
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await self.reader
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                self.cgroup.rmdir()
            self.cgroup = None


class DenoFloors:
    """The JavaScript floor processes of one run, sharing a script and a ``DENO_DIR``.

    ``available`` is False when the Deno binary or the vendored libraries were not found.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.deno, self.vendor = deno_binary(), js_vendor_dir()
        self.available = self.deno is not None and self.vendor is not None
        self.workdir = Path(tempfile.mkdtemp(prefix="voicefn-bench-"))
        self.script = self.workdir / "floor.js"
        self.denodir = self.workdir / "deno_dir"
        self.floors: list[DenoFloor] = []
        self.isolates: list[IsolateFloor] = []

    def prepare(self) -> None:
        self.script.write_text(JS_FLOOR)
        self.denodir.mkdir()

    async def start_new(self) -> DenoFloor:
        assert self.deno is not None
        assert self.vendor is not None
        floor = DenoFloor(self.deno, self.script, self.vendor, self.port, self.denodir)
        self.floors.append(floor)
        await floor.start()
        return floor

    async def start_isolate(self, cpu_quota: float | None) -> IsolateFloor:
        """An isolate floor process (a fresh bare Worker per job), held to ``cpu_quota``
        cores where a cpu cgroup is writable."""
        assert self.deno is not None
        floor = IsolateFloor(self.deno, self.workdir, self.denodir, cpu_quota)
        self.isolates.append(floor)
        await floor.start()
        return floor

    async def aclose(self) -> None:
        for floor in self.floors:
            await floor.close()
        for isolate in self.isolates:
            await isolate.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
