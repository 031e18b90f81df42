"""Which events make which messages, and for which endpoints."""

from __future__ import annotations

import orjson

from datamill.storage.events import EventRow
from datamill.storage.webhooks import EndpointRecord
from datamill.webhooks.messages import message_of, plan_deliveries


def event(topic: str, payload: dict, *, project: str | None = "proj_a", at: float = 100.0):
    return EventRow(1, topic, None, orjson.dumps(payload).decode(), at, project)


def endpoint(project: str = "proj_a", types: list[str] | None = None, at: float = 50.0):
    return EndpointRecord(
        f"wh_{project}",
        project,
        "https://x.test/",
        None,
        "whsec_AA==",
        types or [],
        True,
        None,
        at,
        at,
    )


def test_only_final_batch_states_and_ended_jobs_make_messages():
    assert message_of(event("batch", {"id": "b", "status": "in_progress"})) is None
    assert message_of(event("batch", {"id": "b", "status": "cancelling"})) is None
    assert message_of(event("deployment", {"status": "completed"})) is None
    assert message_of(event("batch", {"id": "b", "status": "completed"}, project=None)) is None
    kind, key, _ = message_of(event("batch", {"id": "b", "status": "expired"}))
    assert (kind, key) == ("batch.expired", "batch.expired:b")
    assert message_of(event("generation", {"type": "progress", "status": "completed"})) is None
    assert message_of(event("generation", {"type": "status", "status": "running"})) is None
    job = {"type": "status", "id": "j", "status": "stopped", "finished_at": 7, "cells": []}
    kind, key, data = message_of(event("generation", job))
    assert (kind, key) == ("generation.stopped", "generation.stopped:j:7")
    assert "cells" not in data
    assert "type" not in data


def test_deliveries_go_to_the_projects_endpoints_that_want_the_type():
    done = event("batch", {"id": "b", "status": "completed"})
    planned = plan_deliveries(
        [done],
        [
            endpoint("proj_a"),
            endpoint("proj_b"),
            endpoint("proj_a", ["batch.failed"]),
            endpoint("proj_a", at=200.0),  # made after the event
        ],
    )
    assert [(d.endpoint_id, d.event_type) for d in planned] == [("wh_proj_a", "batch.completed")]
    body = orjson.loads(planned[0].payload)
    assert body["type"] == "batch.completed"
    assert body["data"] == {"id": "b", "status": "completed"}
    assert body["timestamp"] == "1970-01-01T00:01:40Z"


def test_a_completed_review_makes_one_message_and_a_review_none():
    assert message_of(event("review", {"type": "review", "dataset_id": "ds_a"})) is None
    done = {"type": "completed", "dataset_id": "ds_a", "counts": {"approved": 2}, "completed_at": 9}
    kind, key, data = message_of(event("review", done))
    assert (kind, key) == ("review.completed", "review.completed:ds_a:9")
    assert data == {"dataset_id": "ds_a", "counts": {"approved": 2}, "completed_at": 9}
    [delivery] = plan_deliveries(
        [event("review", done)], [endpoint(types=["review.completed"]), endpoint("proj_b")]
    )
    assert (delivery.event_type, delivery.endpoint_id) == ("review.completed", "wh_proj_a")
