"""Workers as `GET /api/workers` lists them, and the ``worker`` events that carry them."""

from __future__ import annotations

from typing import Any, Literal

from datamill.storage.records import WorkerRecord

WorkerEvent = Literal["started", "heartbeat", "stopped", "dead"]


def worker_object(record: WorkerRecord, *, alive: bool) -> dict[str, Any]:
    """A worker as `GET /api/workers` lists it; ``alive``: running with a fresh heartbeat."""
    return {
        "id": record.id,
        "kind": record.kind,
        "host": record.host,
        "pid": record.pid,
        "version": record.version,
        "status": record.status,
        "alive": alive,
        "current_batch_id": record.current_batch_id,
        "in_flight": record.in_flight,
        "completed": record.completed,
        "failed": record.failed,
        "started_at": int(record.started_at),
        "last_heartbeat_at": record.heartbeat_at,
        "stopped_at": int(record.stopped_at) if record.stopped_at else None,
    }


def worker_event(event: WorkerEvent, record: WorkerRecord) -> dict[str, Any]:
    """A ``worker`` event's payload: ``{"event": ..., "worker": ...}``, the worker as
    `GET /api/workers` lists it (alive when it started or beat)."""
    return {
        "event": event,
        "worker": worker_object(record, alive=event in ("started", "heartbeat")),
    }
