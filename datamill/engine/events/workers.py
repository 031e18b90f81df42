"""Worker events: a worker started, beat, stopped, or was declared dead by another."""

from __future__ import annotations

from datamill.engine.context import EngineContext
from datamill.engine.events.topics import Topic
from datamill.render.workers import WorkerEvent, worker_event
from datamill.storage.records import WorkerRecord


def publish_worker(context: EngineContext, event: WorkerEvent, record: WorkerRecord) -> None:
    """Publish ``{"event": ..., "worker": ...}``, the worker as `GET /api/workers` lists it."""
    context.events.publish(
        Topic.worker, worker_event(event, record), batch_id=record.current_batch_id
    )
