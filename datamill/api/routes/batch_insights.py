"""A batch's throughput over time and its errors by category, for the dashboard's batch
page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from datamill.api.deps import ProjectDep, RuntimeDep
from datamill.callers import VIEWER

router = APIRouter(prefix="/api/batches", tags=["batches"])


@router.get("/{batch_id}/timeline", dependencies=[VIEWER])
async def batch_timeline(
    batch_id: str,
    runtime: RuntimeDep,
    project_id: ProjectDep,
    bucket: Annotated[
        float | None, Query(gt=0, le=86400, description="seconds per bucket; chosen if unset")
    ] = None,
) -> dict[str, Any]:
    """Completed and failed results per time bucket (by when each was recorded), every
    bucket from the first result to the last: the batch's throughput over time."""
    return await runtime.insights.timeline(batch_id, bucket=bucket, project_id=project_id)


@router.get("/{batch_id}/errors/summary", dependencies=[VIEWER])
async def batch_error_summary(
    batch_id: str, runtime: RuntimeDep, project_id: ProjectDep
) -> dict[str, Any]:
    """The batch's failed results grouped by error code, each with its count and up to 3
    examples (custom_id, line, message), the most frequent code first."""
    return await runtime.insights.error_summary(batch_id, project_id=project_id)
