"""What a webhook says: its event types, and the messages made from the event stream.

A message body is Standard Webhooks' ``{"type", "timestamp", "data"}``. Batch messages
carry the Batch object as `GET /v1/batches/{batch_id}` returns it; generation messages the
job as `GET /api/generation/jobs/{job_id}` returns it, without its cells; export messages
the export's `export` event (dataset, format, filters, counts); a dataset's
``review.completed`` its id, its live samples per review state and when. Each message has
an event key naming what it reports (``batch.completed:batch_…``), so a batch that shows
its final state in several events is still reported once per endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from datamill.ids import new_webhook_message_id
from datamill.storage.events import EventRow
from datamill.storage.webhooks import EndpointRecord, NewDelivery


class WebhookEventType(StrEnum):
    batch_completed = "batch.completed"  # output and error files are ready
    batch_failed = "batch.failed"  # the input file was invalid
    batch_expired = "batch.expired"  # the completion window ended
    batch_cancelled = "batch.cancelled"  # cancellation finished
    generation_completed = "generation.completed"  # every cell reached its target
    generation_budget_exhausted = "generation.budget_exhausted"  # a budget ran out
    generation_failed = "generation.failed"  # the job failed; its error says why
    generation_stopped = "generation.stopped"  # stopped (it may be resumed)
    export_completed = "export.completed"  # a dataset export finished streaming
    review_completed = "review.completed"  # every live sample of a dataset is reviewed
    webhook_test = "webhook.test"  # `POST /api/webhooks/{id}/test`: a ping


_BATCH_ENDS = {"completed", "failed", "expired", "cancelled"}
_JOB_ENDS = {"completed", "budget_exhausted", "failed", "stopped"}


def body(event_type: str, data: dict[str, Any], *, at: float) -> str:
    """A message body: ``type``, ``timestamp`` (ISO 8601, UTC) and ``data``."""
    timestamp = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
    return orjson.dumps({"type": event_type, "timestamp": timestamp, "data": data}).decode()


def message_of(event: EventRow) -> tuple[str, str, dict[str, Any]] | None:
    """The event type, event key and data of the message ``event`` makes, if any."""
    if event.project_id is None or event.topic not in ("batch", "generation", "export", "review"):
        return None
    data = orjson.loads(event.payload)
    if not isinstance(data, dict):
        return None
    if event.topic == "export":
        return "export.completed", f"export.completed:{data.get('id')}", data
    if event.topic == "review":
        if data.get("type") != "completed":
            return None
        done = {k: v for k, v in data.items() if k != "type"}
        key = f"review.completed:{done.get('dataset_id')}:{done.get('completed_at')}"
        return "review.completed", key, done
    status = data.get("status")
    if event.topic == "batch":
        if status not in _BATCH_ENDS:
            return None
        return f"batch.{status}", f"batch.{status}:{data.get('id')}", data
    if data.get("type") != "status" or status not in _JOB_ENDS:
        return None
    job = {k: v for k, v in data.items() if k not in ("type", "cells")}
    ended = job.get("finished_at") or job.get("updated_at")
    return f"generation.{status}", f"generation.{status}:{job.get('id')}:{ended}", job


def wants(endpoint: EndpointRecord, event_type: str) -> bool:
    return not endpoint.event_types or event_type in endpoint.event_types


def plan_deliveries(
    events: Sequence[EventRow], endpoints: Sequence[EndpointRecord]
) -> list[NewDelivery]:
    """The deliveries ``events`` make for ``endpoints``: each endpoint of the event's
    project that wants its type and existed when it was written."""
    by_project: dict[str, list[EndpointRecord]] = {}
    for endpoint in endpoints:
        by_project.setdefault(endpoint.project_id, []).append(endpoint)
    planned = []
    for event in events:
        found = message_of(event)
        if found is None:
            continue
        event_type, key, data = found
        text = body(event_type, data, at=event.created_at)
        for endpoint in by_project.get(event.project_id or "", []):
            if wants(endpoint, event_type) and endpoint.created_at <= event.created_at:
                planned.append(
                    NewDelivery(
                        id=new_webhook_message_id(),
                        endpoint_id=endpoint.id,
                        project_id=endpoint.project_id,
                        event_type=event_type,
                        event_key=key,
                        payload=text,
                    )
                )
    return planned
