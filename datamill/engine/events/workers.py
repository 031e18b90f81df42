"""Worker events: a worker started, beat, stopped, or was declared dead by another."""

from __future__ import annotations

from typing import Literal

from datamill.engine.context import EngineContext
from datamill.engine.events.topics import Topic
from datamill.engine.render import worker_object
from datamill.storage.records import WorkerRecord

WorkerEvent = Literal["started", "heartbeat", "stopped", "dead"]


def publish_worker(context: EngineContext, event: WorkerEvent, record: WorkerRecord) -> None:
    """Publish ``{"event": ..., "worker": ...}``, the worker as `GET /api/workers` lists it."""
    alive = event in ("started", "heartbeat")
    context.events.publish(
        Topic.worker,
        {"event": event, "worker": worker_object(record, alive=alive)},
        batch_id=record.current_batch_id,
    )
