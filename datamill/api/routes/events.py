"""`GET /api/events`: the server's event stream (server-sent events)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request

from datamill.api.deps import RuntimeDep
from datamill.api.event_stream import EventStreamResponse
from datamill.callers import VIEWER, CallerDep, presented_key
from datamill.runtime import Runtime

router = APIRouter(prefix="/api", tags=["events"])

_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-sent events: `id`, `event` (the topic) and `data` (JSON).",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


@router.get("/events", dependencies=[VIEWER], response_model=None, responses=_STREAM)
async def events(
    request: Request,
    runtime: RuntimeDep,
    caller: CallerDep,
    topic: Annotated[list[str] | None, Query(description="batch, deployment or worker")] = None,
    batch_id: Annotated[list[str] | None, Query()] = None,
    last_event_id: Annotated[
        str | None, Query(description="resume after this id (tools that cannot set headers)")
    ] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventStreamResponse:
    """The server's events as they happen: batches, deployments, workers. ``Last-Event-ID``
    (or ``last_event_id``; the header wins, as a browser's reconnect sends it) replays the
    events after that id first; ``topic`` and ``batch_id`` (repeatable) filter them. The
    caller's project's events only (and shared ones: deployments, idle workers); a stream
    whose key is revoked or expires ends at its next event or ping."""
    resume = None
    if last_event_id_header is not None:
        resume = (last_event_id_header.strip(), "Last-Event-ID")
    elif last_event_id is not None:
        resume = (last_event_id.strip(), "last_event_id")
    stream = await runtime.event_stream.open(
        topics=topic or (),
        batch_ids=batch_id or (),
        last_event_id=resume,
        project_id=caller.project_id,
    )
    if caller.local:
        return EventStreamResponse(stream, close=stream.aclose)
    key, _ = presented_key(request)
    return EventStreamResponse(_while_key_holds(stream, runtime, key), close=stream.aclose)


async def _while_key_holds(
    stream: AsyncIterator[bytes], runtime: Runtime, key: str | None
) -> AsyncIterator[bytes]:
    """The stream's frames while its key still works (checked before each, cached for a
    second): a key revoked or expired meanwhile ends the stream."""
    async for frame in stream:
        if not await runtime.auth.still_valid(key):
            return
        yield frame
