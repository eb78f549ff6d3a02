"""Jobs to rows and back: what can be shown (``payload``, JSON) and what is encrypted at rest
(``secret``: sensitive headers, the function's secrets, the call's variables, a task's secret).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, fields
from typing import Any

from ..context import CallContext
from ..redaction import is_sensitive_header
from .model import FunctionJob, HttpJob, Job, Kind, TaskJob

#: What a masked value reads in a shown payload.
MASK = "[secret]"


@dataclass(frozen=True, slots=True)
class Encoded:
    kind: Kind
    name: str
    key: str | None
    max_attempts: int | None
    payload: dict[str, Any]
    secret: dict[str, Any]


def encode(job: Job) -> Encoded:
    if isinstance(job, HttpJob):
        return _encode_http(job)
    if isinstance(job, FunctionJob):
        return _encode_function(job)
    if isinstance(job, TaskJob):
        return Encoded(
            "task",
            job.name or job.task,
            job.key,
            job.max_attempts,
            {"task": job.task, "payload": dict(job.payload)},
            {"secret": dict(job.secret)} if job.secret else {},
        )
    raise TypeError(f"not a job: {job!r}")


def _encode_http(job: HttpJob) -> Encoded:
    shown: dict[str, str] = {}
    hidden: dict[str, str] = {}
    for name, value in job.headers.items():
        if is_sensitive_header(name):
            shown[name] = MASK
            hidden[name] = value
        else:
            shown[name] = value
    payload: dict[str, Any] = {
        "url": job.url,
        "method": job.method.upper(),
        "headers": shown,
        "sign": job.sign,
        "agent_id": job.agent_id,
        "timeout_s": job.timeout_s,
    }
    if isinstance(job.body, bytes | bytearray):
        payload["body_base64"] = base64.b64encode(bytes(job.body)).decode()
    else:
        payload["body"] = job.body
    return Encoded(
        "http",
        job.name,
        job.key,
        job.max_attempts,
        payload,
        {"headers": hidden} if hidden else {},
    )


def _context_fields(ctx: CallContext) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(ctx):
        if f.name == "variables":
            continue
        value = getattr(ctx, f.name)
        if value is None or isinstance(value, str | int | float | bool):
            out[f.name] = value
    return out


def _encode_function(job: FunctionJob) -> Encoded:
    from ..store.secrets import function_places, seal

    document = job.function.to_dict()
    masked, secrets, _ = seal(document, function_places(document), {})
    context = _context_fields(job.context)
    payload = {
        "function": masked,
        "arguments": dict(job.arguments),
        "context": context,
        "variables": sorted(job.context.variables),
        "sign": job.sign,
    }
    secret: dict[str, Any] = {}
    if secrets:
        secret["function"] = secrets
    if job.context.variables:
        secret["variables"] = dict(job.context.variables)
    return Encoded(
        "function",
        job.name or job.function.name,
        job.key,
        job.max_attempts,
        payload,
        secret,
    )


def decode(kind: str, name: str, payload: dict[str, Any], secret: dict[str, Any]) -> Job:
    """The job a row holds, secrets put back."""
    if kind == "http":
        headers = dict(payload.get("headers") or {})
        headers.update(secret.get("headers") or {})
        body: Any = payload.get("body")
        if "body_base64" in payload:
            body = base64.b64decode(payload["body_base64"])
        return HttpJob(
            url=payload["url"],
            body=body,
            name=name,
            method=payload.get("method", "POST"),
            headers=headers,
            sign=bool(payload.get("sign", True)),
            agent_id=payload.get("agent_id"),
            timeout_s=float(payload.get("timeout_s") or 10.0),
        )
    if kind == "function":
        from ..spec import Function
        from ..store.secrets import unseal

        document = unseal(payload["function"], secret.get("function") or {})
        known = {f.name for f in fields(CallContext)}
        context = {k: v for k, v in (payload.get("context") or {}).items() if k in known}
        return FunctionJob(
            function=Function.model_validate(document),
            arguments=payload.get("arguments") or {},
            context=CallContext(**context, variables=secret.get("variables") or {}),
            sign=bool(payload.get("sign", False)),
            name=name,
        )
    if kind == "task":
        return TaskJob(
            task=payload["task"],
            payload=payload.get("payload") or {},
            secret=secret.get("secret") or {},
            name=name,
        )
    raise ValueError(f"unknown job kind {kind!r}")
