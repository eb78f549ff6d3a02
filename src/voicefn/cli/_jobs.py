"""``voicefn jobs list|show|redeliver``: post-call jobs on a running service (its API, with a
workspace's key), dead-letter ones sent again."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from ..server.cli import DEFAULT_URL, KeyOpt, UrlOpt, _client, _fail, _report_error

jobs_app = typer.Typer(
    help="Post-call jobs (durable delivery): list, show, redeliver dead-letter ones.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="The API's JSON.")]


def _get(url: str, api_key: str | None, path: str, params: dict[str, Any] | None = None) -> Any:
    import httpx

    try:
        with _client(url, api_key) as client:
            response = client.get(path, params=params)
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach {url}: {exc}") from None
    if response.status_code != 200:
        raise _report_error(response)
    return response.json()


def _line(job: dict[str, Any]) -> str:
    last = job.get("last_error") or (
        f"status {job['last_status']}" if job.get("last_status") else ""
    )
    return (
        f"{job['id']:<30} {job['state']:<10} {job['kind']:<9} {job['name'][:28]:<28} "
        f"{job['attempts']:>3}  {last[:60]}"
    )


@jobs_app.command("list")
def list_cmd(
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
    state: Annotated[
        str | None,
        typer.Option("--state", help="queued, running, succeeded or dead (dead-letter)."),
    ] = None,
    call_id: Annotated[str | None, typer.Option("--call-id", help="One call's jobs.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=200)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Jobs, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if state:
        params["state"] = state
    if call_id:
        params["call_id"] = call_id
    page = _get(url, api_key, "/v1/jobs", params)
    if as_json:
        sys.stdout.write(json.dumps(page, indent=2) + "\n")
        return
    if not page["data"]:
        sys.stdout.write("no jobs\n")
        return
    sys.stdout.write(f"{'ID':<30} {'STATE':<10} {'KIND':<9} {'NAME':<28} TRY  LAST\n")
    for job in page["data"]:
        sys.stdout.write(_line(job) + "\n")
    if page.get("next_cursor"):
        sys.stdout.write("(more: --json shows next_cursor)\n")


@jobs_app.command("show")
def show_cmd(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One job: what it sends, each attempt, its result."""
    job = _get(url, api_key, f"/v1/jobs/{job_id}")
    if as_json:
        sys.stdout.write(json.dumps(job, indent=2) + "\n")
        return
    out = sys.stdout
    out.write(f"{job['id']}  {job['kind']} {job['name']}  {job['state']}\n")
    out.write(f"  call: {job.get('call_id') or '-'}   key: {job.get('key') or '-'}\n")
    out.write(f"  created: {job['created_at']}   attempts: {job['attempts']}\n")
    if job.get("next_attempt_at"):
        out.write(f"  next attempt: {job['next_attempt_at']}\n")
    for a in job["attempt_log"]:
        status = f" {a['status']}" if a.get("status") else ""
        error = f"  {a['error']}" if a.get("error") else ""
        out.write(f"  #{a['n']} {a['started_at']} {a['outcome']}{status}{error}\n")
    out.write("  payload: " + json.dumps(job["payload"], ensure_ascii=False)[:2000] + "\n")
    if job.get("result") is not None:
        out.write("  result: " + json.dumps(job["result"], ensure_ascii=False)[:2000] + "\n")


@jobs_app.command("redeliver")
def redeliver_cmd(
    job_ids: Annotated[list[str] | None, typer.Argument(help="Dead-letter jobs' ids.")] = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
    all_dead: Annotated[
        bool, typer.Option("--all-dead", help="Every dead-letter job of the workspace.")
    ] = False,
) -> None:
    """Queue dead-letter jobs again (due now, a fresh budget of attempts)."""
    import httpx

    ids = list(job_ids or [])
    if all_dead:
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"state": "dead", "limit": 200}
            if cursor:
                params["cursor"] = cursor
            page = _get(url, api_key, "/v1/jobs", params)
            ids += [j["id"] for j in page["data"]]
            cursor = page.get("next_cursor")
            if not cursor:
                break
    if not ids:
        raise _fail("name the jobs to redeliver, or pass --all-dead", 2)
    failed = 0
    try:
        with _client(url, api_key) as client:
            for job_id in ids:
                response = client.post(f"/v1/jobs/{job_id}/redeliver")
                if response.status_code == 200:
                    sys.stdout.write(f"{job_id} queued\n")
                    continue
                failed += 1
                try:
                    message = response.json().get("message")
                except ValueError:
                    message = response.text[:200]
                sys.stderr.write(f"error: {job_id}: {message}\n")
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach {url}: {exc}") from None
    if failed:
        raise typer.Exit(1)
