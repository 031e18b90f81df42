"""`/v1/batches`, as OpenAI's Batch API, plus partial results while a batch runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from datamill.api.deps import ProjectDep, RuntimeDep
from datamill.api.downloads import download_headers
from datamill.callers import MEMBER, VIEWER, CallerDep
from datamill.protocol.batches import BatchCreate, BatchObject, BatchStatus
from datamill.protocol.common import ListObject
from datamill.render.batches import batch_object

router = APIRouter(prefix="/v1/batches", tags=["batches"])


@router.post("", dependencies=[MEMBER], response_model=BatchObject)
async def create_batch(
    request: BatchCreate,
    runtime: RuntimeDep,
    caller: CallerDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> BatchObject:
    """Create a batch. An ``Idempotency-Key`` header makes retries of this call safe. The
    key's request and spend limits apply (429 with ``Retry-After``)."""
    await runtime.auth.check_limits(caller)
    record = await runtime.batches.create(
        request,
        project_id=caller.project_id,
        idempotency_key=idempotency_key,
        key_id=caller.key_id,
    )
    return batch_object(record)


@router.get("", dependencies=[VIEWER], response_model=ListObject[BatchObject])
async def list_batches(
    runtime: RuntimeDep,
    project_id: ProjectDep,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ListObject[BatchObject]:
    records, has_more = await runtime.batches.list(project_id=project_id, after=after, limit=limit)
    return ListObject[BatchObject].page([batch_object(r) for r in records], has_more=has_more)


@router.get("/{batch_id}", dependencies=[VIEWER], response_model=BatchObject)
async def retrieve_batch(batch_id: str, runtime: RuntimeDep, project_id: ProjectDep) -> BatchObject:
    return batch_object(await runtime.batches.get(batch_id, project_id=project_id))


@router.post("/{batch_id}/cancel", dependencies=[MEMBER], response_model=BatchObject)
async def cancel_batch(batch_id: str, runtime: RuntimeDep, project_id: ProjectDep) -> BatchObject:
    return batch_object(await runtime.batches.cancel(batch_id, project_id=project_id))


async def _results(
    batch_id: str, runtime: RuntimeDep, project_id: str, *, ok: bool
) -> StreamingResponse:
    batch, lines = await runtime.batches.results(batch_id, ok=ok, project_id=project_id)
    partial = not BatchStatus(batch.status).terminal
    return StreamingResponse(
        lines,
        media_type="application/jsonl",
        headers={
            "X-Datamill-Partial": "true" if partial else "false",
            **download_headers(f"{batch.id}_{'output' if ok else 'errors'}.jsonl"),
        },
    )


@router.get("/{batch_id}/output", dependencies=[VIEWER])
async def batch_output(
    batch_id: str, runtime: RuntimeDep, project_id: ProjectDep
) -> StreamingResponse:
    """datamill extension: the output lines recorded so far (the whole output file once the
    batch is done). ``X-Datamill-Partial: true`` while the batch still runs."""
    return await _results(batch_id, runtime, project_id, ok=True)


@router.get("/{batch_id}/errors", dependencies=[VIEWER])
async def batch_errors(
    batch_id: str, runtime: RuntimeDep, project_id: ProjectDep
) -> StreamingResponse:
    """datamill extension: the error lines recorded so far, as `batch_output`."""
    return await _results(batch_id, runtime, project_id, ok=False)
