"""Durable delivery: post-call jobs (listed, shown with their attempts, dead-letter ones
redelivered) and the webhook signing keys that sign them."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from ...jobs.model import JobRecord
from ...jobs.service import signing_cache
from ...store import BadCursor
from ...store.sql.jobs import JobFilter, NotDead, SigningKey
from ...validation import Problem
from ..deps import PlatformDep, WorkspaceDep
from ..errors import ApiError, invalid, not_found
from ..schemas import ERRORS, ID_PATTERN, Cursor, ErrorOut, IdFilter, at

router = APIRouter(tags=["jobs"], responses=ERRORS)

JobId = Annotated[str, Field(pattern=ID_PATTERN)]
JobIdPath = Annotated[str, Path(pattern=ID_PATTERN)]
SigningKeyIdPath = Annotated[str, Path(pattern=ID_PATTERN)]


class AttemptOut(BaseModel):
    n: int
    started_at: dt.datetime
    finished_at: dt.datetime
    outcome: Literal["ok", "retry", "final"]
    status: int | None
    error: str | None
    retry_after_s: float | None


class JobOut(BaseModel):
    id: str = Field(description="Also the idempotency key its requests carry")
    call_id: str | None
    kind: Literal["http", "function", "task"]
    name: str
    key: str | None
    state: Literal["queued", "running", "succeeded", "dead"]
    attempts: int
    max_attempts: int | None = Field(description="None: the server's setting")
    next_attempt_at: dt.datetime | None = Field(description="When a queued job is tried next")
    created_at: dt.datetime
    first_attempt_at: dt.datetime | None
    finished_at: dt.datetime | None
    last_status: int | None
    last_error: str | None


class JobDetail(JobOut):
    payload: dict[str, Any] = Field(description="What it sends; secrets shown as [secret]")
    result: Any
    attempt_log: list[AttemptOut]


class JobList(BaseModel):
    data: list[JobOut]
    next_cursor: str | None


def _job(r: JobRecord) -> JobOut:
    return JobOut(
        id=r.id,
        call_id=r.call_id,
        kind=r.kind,
        name=r.name,
        key=r.key,
        state=r.state,
        attempts=r.attempts,
        max_attempts=r.max_attempts,
        next_attempt_at=at(r.due_us) if r.state == "queued" and r.due_us else None,
        created_at=at(r.created_us),
        first_attempt_at=at(r.first_attempt_us) if r.first_attempt_us else None,
        finished_at=at(r.finished_us) if r.finished_us else None,
        last_status=r.last_status,
        last_error=r.last_error,
    )


def attempts_out(r: JobRecord) -> list[AttemptOut]:
    """A job's delivery attempts as the API answers them."""
    return [
        AttemptOut(
            n=a.n,
            started_at=at(a.started_us),
            finished_at=at(a.finished_us),
            outcome=a.outcome,
            status=a.status,
            error=a.error,
            retry_after_s=a.retry_after_s,
        )
        for a in r.attempt_log
    ]


def _detail(r: JobRecord) -> JobDetail:
    return JobDetail(
        **_job(r).model_dump(),
        payload=r.payload,
        result=r.result,
        attempt_log=attempts_out(r),
    )


@router.get("/v1/jobs", summary="Post-call jobs, newest first (state=dead: the dead-letter list)")
async def list_jobs(
    ws: WorkspaceDep,
    platform: PlatformDep,
    state: Literal["queued", "running", "succeeded", "dead"] | None = None,
    call_id: Annotated[str | None, Query(max_length=200)] = None,
    kind: Literal["http", "function", "task"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> JobList:
    try:
        async with platform.store.read() as repos:
            page = await repos.jobs.page(
                ws, JobFilter(state, call_id, kind), limit=limit, cursor=cursor
            )
    except BadCursor as exc:
        raise invalid([Problem("query:cursor", str(exc), "pass next_cursor as given")]) from None
    return JobList(data=[_job(r) for r in page.items], next_cursor=page.next_cursor)


@router.get("/v1/jobs/{job_id}", summary="One job: what it sends, its attempts, its result")
async def get_job(job_id: JobIdPath, ws: WorkspaceDep, platform: PlatformDep) -> JobDetail:
    async with platform.store.read() as repos:
        r = await repos.jobs.get(ws, job_id)
    if r is None:
        raise not_found(f"job {job_id}")
    return _detail(r)


@router.post(
    "/v1/jobs/{job_id}/redeliver",
    summary="Queue a dead-letter job again (due now, a fresh budget of attempts)",
    responses={409: {"model": ErrorOut, "description": "The job is not dead-letter"}},
)
async def redeliver_job(job_id: JobIdPath, ws: WorkspaceDep, platform: PlatformDep) -> JobDetail:
    try:
        async with platform.store.write() as repos:
            r = await repos.jobs.redeliver(ws, job_id)
    except NotDead as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    if r is None:
        raise not_found(f"job {job_id}")
    return _detail(r)


# ---------------------------------------------------------------------- signing keys


class SigningKeyOut(BaseModel):
    id: str
    agent_id: str | None = Field(description="None: the workspace's key (signs every webhook)")
    prefix: str
    created_at: dt.datetime
    expires_at: dt.datetime | None


class SigningKeyWithSecret(SigningKeyOut):
    secret: str = Field(description="whsec_...: give it to the receiver (voicefn.webhooks.verify)")


class SigningKeyIn(BaseModel):
    agent_id: JobId | None = Field(
        None, description="Sign this agent's webhooks with it (default: the workspace's key)"
    )
    expire_others_in_s: float | None = Field(
        None,
        ge=0,
        le=30 * 86400,
        description="A rotation: the other keys of the same scope stop signing after this many "
        "seconds (until then every key signs: receivers switch without a gap)",
    )


def _key(k: SigningKey) -> SigningKeyOut:
    return SigningKeyOut(
        id=k.id,
        agent_id=k.agent_id or None,
        prefix=k.prefix,
        created_at=at(k.created_us),
        expires_at=at(k.expires_us) if k.expires_us else None,
    )


@router.get("/v1/signing-keys", summary="Webhook signing keys (secrets not shown)")
async def list_signing_keys(
    ws: WorkspaceDep, platform: PlatformDep, agent_id: IdFilter = None
) -> list[SigningKeyOut]:
    async with platform.store.read() as repos:
        keys = await repos.signing_keys.all(ws, agent_id)
    return [_key(k) for k in keys]


@router.post(
    "/v1/signing-keys",
    status_code=201,
    summary="A new webhook signing key (rotate: expire_others_in_s); the secret is shown",
)
async def create_signing_key(
    body: SigningKeyIn, ws: WorkspaceDep, platform: PlatformDep
) -> SigningKeyWithSecret:
    async with platform.store.write() as repos:
        if body.agent_id is not None and await repos.agents.get(ws, body.agent_id) is None:
            raise not_found(f"agent {body.agent_id}")
        made = await repos.signing_keys.create(
            ws, body.agent_id or "", expire_others_in_s=body.expire_others_in_s
        )
    signing_cache(platform).forget(ws.id)
    return SigningKeyWithSecret(**_key(made.record).model_dump(), secret=made.secret)


@router.get("/v1/signing-keys/{signing_key_id}", summary="One signing key, with its secret")
async def get_signing_key(
    signing_key_id: SigningKeyIdPath, ws: WorkspaceDep, platform: PlatformDep
) -> SigningKeyWithSecret:
    async with platform.store.read() as repos:
        found = await repos.signing_keys.reveal(ws, signing_key_id)
    if found is None:
        raise not_found(f"signing key {signing_key_id}")
    return SigningKeyWithSecret(**_key(found.record).model_dump(), secret=found.secret)


@router.delete(
    "/v1/signing-keys/{signing_key_id}", summary="Delete a signing key: it stops signing"
)
async def delete_signing_key(
    signing_key_id: SigningKeyIdPath, ws: WorkspaceDep, platform: PlatformDep
) -> SigningKeyOut:
    async with platform.store.write() as repos:
        gone = await repos.signing_keys.delete(ws, signing_key_id)
    if gone is None:
        raise not_found(f"signing key {signing_key_id}")
    signing_cache(platform).forget(ws.id)
    return _key(gone)
