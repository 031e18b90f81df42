"""Worker events: a worker started, beat, stopped, or was declared dead by another."""

from __future__ import annotations

from datamill.events.publisher import EventPublisher
from datamill.events.topics import Topic
from datamill.render.workers import WorkerEvent, worker_event
from datamill.storage.records import WorkerRecord


def publish_worker(events: EventPublisher, event: WorkerEvent, record: WorkerRecord) -> None:
    """Publish ``{"event": ..., "worker": ...}``, the worker as `GET /api/workers` lists it."""
    events.publish(Topic.worker, worker_event(event, record), batch_id=record.current_batch_id)
