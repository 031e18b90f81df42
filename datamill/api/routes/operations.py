"""datamill's own operational routes under `/api`: info, workers, stuck batches, usage."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from datamill import __version__
from datamill.api.deps import ProjectDep, RuntimeDep
from datamill.callers import VIEWER
from datamill.render.batches import batch_object
from datamill.render.workers import worker_object
from datamill.storage.usage import UsageGroup

router = APIRouter(prefix="/api", tags=["operations"])


@router.get("/info", dependencies=[VIEWER])
async def info(runtime: RuntimeDep, project_id: ProjectDep) -> dict[str, Any]:
    """Version, store, deployments (never their keys), the project's counts, and this
    process's events: written, the transactions that wrote them, and the clients following
    the stream."""
    return {
        "version": __version__,
        "store": runtime.database.describe(),
        "simulated": runtime.settings.simulated,
        "deployments": [
            {**handle.config.public_view(), "live": handle.gate.snapshot()}
            for handle in runtime.router.handles
        ],
        "counts": await runtime.operations.counts(project_id=project_id),
        "events": {
            "written": runtime.events.written,
            "writes": runtime.events.writes,
            "subscribers": runtime.event_hub.subscribers,
        },
    }


@router.get("/workers", dependencies=[VIEWER])
async def workers(
    runtime: RuntimeDep, project_id: ProjectDep, include_stopped: bool = True
) -> dict[str, Any]:
    """Every worker with its heartbeat, current batch and counts, newest first. Workers
    serve every project; a current batch of another project is shown as null."""
    records = await runtime.operations.workers(include_stopped=include_stopped)
    own = await runtime.operations.own_batches(
        {w.current_batch_id for w in records if w.current_batch_id}, project_id=project_id
    )
    data = []
    for record in records:
        shown = worker_object(record, alive=runtime.operations.is_alive(record))
        if shown["current_batch_id"] not in own:
            shown["current_batch_id"] = None
        data.append(shown)
    return {"object": "list", "data": data}


@router.get("/batches/stuck", dependencies=[VIEWER])
async def stuck_batches(runtime: RuntimeDep, project_id: ProjectDep) -> dict[str, Any]:
    """The project's running batches with pending work and no progress for
    DATAMILL_STUCK_AFTER seconds."""
    stuck = await runtime.operations.stuck_batches(project_id=project_id)
    return {
        "object": "list",
        "data": [
            {
                "batch": batch_object(item.batch).model_dump(),
                "requests_by_state": item.requests_by_state,
                "stuck_for_seconds": round(item.stuck_for, 1),
            }
            for item in stuck
        ],
    }


@router.get("/usage", dependencies=[VIEWER])
async def usage(
    runtime: RuntimeDep,
    project_id: ProjectDep,
    group_by: UsageGroup = UsageGroup.model,
    since: Annotated[float | None, Query(ge=0)] = None,
    until: Annotated[float | None, Query(gt=0)] = None,
) -> dict[str, Any]:
    """Requests, tokens and cost in USD of batch requests and gateway calls between
    ``since`` and ``until`` (Unix times; all time by default), per ``group_by``: model (the
    name asked for: an alias totals its deployments), deployment, batch, day or source."""
    return await runtime.operations.usage(
        group_by=group_by, since=since, until=until, project_id=project_id
    )
