"""Post-call jobs: the dead-letter list (or any state), one job with its attempts, and
**Redeliver** (a CSRF-checked POST; to htmx, the job's row swapped in place). Redelivery is the
store's own :meth:`~voicefn.store.sql.jobs.SqlJobs.redeliver`, as ``POST /v1/jobs/{id}/redeliver``
and ``voicefn jobs redeliver`` use."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ...jobs.model import STATES
from ...store.sql.jobs import JobFilter, NotDead
from . import data
from .auth import PlatformDep, ViewerDep
from .render import HEADERS, checked_id, not_found, page, redirect, render
from .stored_calls import attempts

router = APIRouter(include_in_schema=False)

PAGE = 50


@router.get("/jobs")
async def jobs_page(request: Request, viewer: ViewerDep, platform: PlatformDep) -> Response:
    q = request.query_params
    state = q.get("state", "dead")
    notes: list[str] = []
    if state not in ("", *STATES):
        notes.append(f"ignored the state filter {state!r}: not one of {STATES}")
        state = "dead"
    flt = JobFilter(state or None)
    found, cursor = await data.paged(
        platform,
        lambda repos, at: repos.jobs.page(viewer.ws, flt, limit=PAGE, cursor=at),
        q.get("cursor") or None,
        notes,
    )
    return page(
        request,
        "jobs.html",
        nav="jobs",
        rows=found.items,
        state=state,
        states=STATES,
        notes=notes,
        next_query={"state": state, "cursor": found.next_cursor} if found.next_cursor else None,
        first_page=cursor is None,
    )


@router.get("/jobs/{job_id}")
async def job_page(
    request: Request, job_id: str, viewer: ViewerDep, platform: PlatformDep
) -> Response:
    async with platform.store.read() as repos:
        job = await repos.jobs.get(viewer.ws, checked_id(job_id))
    if job is None:
        raise not_found()
    return page(request, "job.html", nav="jobs", job=job, attempts=attempts(job))


@router.post("/jobs/{job_id}/redeliver")
async def redeliver(
    request: Request, job_id: str, viewer: ViewerDep, platform: PlatformDep
) -> Response:
    note, status = "Queued again: due now, with a fresh budget of attempts.", 200
    checked = checked_id(job_id)
    try:
        async with platform.store.write() as repos:
            job = await repos.jobs.redeliver(viewer.ws, checked)
    except NotDead as exc:
        note, status = str(exc), 409
        async with platform.store.read() as repos:
            job = await repos.jobs.get(viewer.ws, checked)
    if job is None:
        raise not_found()
    if request.headers.get("hx-request"):
        html = render("_job_row.html", j=job, viewer=viewer, note=note)
        return HTMLResponse(html, status_code=status, headers=HEADERS)
    return redirect(f"/jobs/{job.id}")
