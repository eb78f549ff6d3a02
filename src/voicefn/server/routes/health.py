"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ..deps import OperatorDep, PlatformDep
from ..responses import Json
from ..schemas import ErrorOut

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Ready to serve: started, and the database answers",
    responses={503: {"description": "Not ready", "model": dict[str, str]}},
)
async def readyz(platform: PlatformDep) -> Response:
    if not platform.ready:
        return Json({"status": "starting"}, 503)
    try:
        await platform.store.ping()
    except Exception:
        return Json({"status": "database unavailable"}, 503)
    return Json({"status": "ready", "database": platform.store.backend})


@router.get(
    "/metrics",
    summary="Prometheus metrics (operator key)",
    responses={
        200: {"content": {"text/plain": {}}},
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
    },
)
async def metrics(_: OperatorDep, platform: PlatformDep) -> Response:
    """Executions by workspace, function and outcome, their latency, and every HTTP route.
    Scrape with the operator key (``authorization: {credentials: vfn_...}``): labels name
    workspaces and functions, which tenants must not see of each other."""
    return Response(platform.metrics.render(), media_type="text/plain; version=0.0.4")
