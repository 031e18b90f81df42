"""Generation jobs and their cells (`/api/generation/jobs`), and the ``generation`` events
that carry them: a ``status`` event is exactly the job `GET /api/generation/jobs/{job_id}`
returns, a ``progress`` event the job as `GET /api/generation/jobs` lists it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datamill.protocol.generation import (
    GenerationCellObject,
    GenerationJobObject,
    GenerationRunObject,
)
from datamill.storage.generation import CellRecord, JobRecord, RunRecord


def cell_object(cell: CellRecord) -> GenerationCellObject:
    return GenerationCellObject(
        topic=cell.topic,
        sample_type=cell.sample_type,
        target=cell.target,
        accepted=cell.accepted,
        in_flight=cell.in_flight,
        rejected=cell.rejections,
        duplicates=cell.duplicates,
        surplus=cell.surplus,
        requests=cell.requests,
        cost=round(cell.cost, 8),
    )


def job_object(
    job: JobRecord, cells: Sequence[CellRecord] | None = None, *, target: int | None = None
) -> GenerationJobObject:
    """The job with its cells; a listing leaves them out (``cells=None``) and gives the
    job's total ``target`` instead."""
    return GenerationJobObject(
        id=job.id,
        name=job.name,
        status=job.status,
        stop_reason=job.stop_reason,
        error=job.error,
        dataset_id=job.dataset_id,
        spec_hash=job.spec_hash,
        spec_version=job.spec_version,
        topics=job.topics,
        target=sum(c.target for c in cells) if cells is not None else (target or 0),
        accepted=job.accepted,
        rejected=job.rejected,
        duplicates=job.duplicates,
        surplus=job.surplus,
        requests=job.requests,
        cost=round(job.cost, 8),
        budget={
            "usd": job.budget_usd,
            "requests": job.budget_requests,
            "seconds": job.budget_seconds,
        },
        elapsed=job.elapsed,
        runner=job.runner,
        created_at=job.created_at,
        updated_at=job.updated_at,
        finished_at=job.finished_at,
        progress_at=job.progress_at,
        cells=[cell_object(c) for c in cells] if cells is not None else None,
    )


def run_object(run: RunRecord) -> GenerationRunObject:
    """One run of a job (`GET /api/generation/jobs/{job_id}/history`)."""
    return GenerationRunObject(
        runner=run.runner,
        started_at=run.started_at,
        ended_at=run.ended_at,
        outcome=run.outcome,
        accepted_before=run.accepted_before,
        accepted_after=run.accepted_after,
    )


def status_event(job: JobRecord, cells: Sequence[CellRecord]) -> dict[str, Any]:
    """A ``status`` event (created, stopped, resumed, ended): ``type`` and the job exactly
    as `GET /api/generation/jobs/{job_id}` returns it, cells included."""
    return {"type": "status", **job_object(job, cells).model_dump(mode="json")}


def progress_event(
    job: JobRecord,
    cells: Sequence[CellRecord],
    changed: Sequence[CellRecord],
    eta: float | None,
) -> dict[str, Any]:
    """A ``progress`` event: ``type``, the job as `GET /api/generation/jobs` lists it
    (without its cells: progress goes out twice a second, and a spec can have thousands),
    the cells that changed since the last one, and the totals a progress bar shows."""
    rejected: dict[str, int] = {}
    for cell in cells:
        for reason, count in cell.rejections.items():
            rejected[reason] = rejected.get(reason, 0) + count
    listed = job_object(job, target=sum(c.target for c in cells))
    return {
        "type": "progress",
        **listed.model_dump(mode="json"),
        "cells_full": sum(c.accepted >= c.target for c in cells),
        "in_flight": sum(c.in_flight for c in cells),
        "rejected_by_reason": rejected,
        "eta_seconds": None if eta is None else round(eta, 1),
        "changed_cells": [cell_object(c).model_dump(mode="json") for c in changed],
    }


def stuck_event(job: JobRecord, *, since: float, message: str) -> dict[str, Any]:
    """A ``stuck`` event: the job (``id``, ``status``) has had no answer since ``since``."""
    return {"type": "stuck", "id": job.id, "status": job.status, "since": since, "message": message}
