"""Published JSON Schemas: what webhook receivers validate against. Public (no key): a schema
holds no workspace's data."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ...runtime.postcall_record import EXECUTION_RECORD_SCHEMA

router = APIRouter(tags=["schemas"])


@router.get(
    "/v1/schemas/execution-record.json",
    summary="The execution record's JSON Schema (what the agent webhook receives)",
    response_model=None,
)
async def execution_record_schema() -> dict[str, Any]:
    return EXECUTION_RECORD_SCHEMA
