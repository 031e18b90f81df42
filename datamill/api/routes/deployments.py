"""`GET /api/deployments`: every deployment's configuration and live state, for the
dashboard."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from datamill.api.deps import RuntimeDep

router = APIRouter(prefix="/api", tags=["deployments"])


@router.get("/deployments")
async def deployments(runtime: RuntimeDep) -> dict[str, Any]:
    """Each deployment's configuration (never its key), its live gate state and call
    figures in this process, and its state in the other processes calling it."""
    return {"object": "list", "data": await runtime.deployments.describe()}
