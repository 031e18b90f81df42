"""The topics of the event stream; a client filters on them (`GET /api/events?topic=`)."""

from __future__ import annotations

from enum import StrEnum


class Topic(StrEnum):
    batch = "batch"  # a Batch object, as GET /v1/batches/{id} renders it
    deployment = "deployment"  # a deployment's live state in one process
    worker = "worker"  # a worker started, beat, stopped or was declared dead
    generation = "generation"  # a generation job's progress per cell, status changes, stuck
    export = "export"  # a dataset export finished streaming
    review = "review"  # a review written; a dataset whose review completed
