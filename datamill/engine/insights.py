"""BatchInsights: a batch's throughput over time and its errors by category (the dashboard's
batch page), read from its results."""

from __future__ import annotations

import math
from typing import Any

from datamill.engine.service import BatchService
from datamill.errors import InvalidRequest
from datamill.storage import insights
from datamill.storage.database import Database
from datamill.storage.schema import DEFAULT_PROJECT_ID

MAX_BUCKETS = 10_000
EXAMPLES = 3
# Bucket sizes chosen when none is asked for: the smallest giving at most AUTO_BUCKETS.
AUTO_BUCKETS = 120
_NICE = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)


class BatchInsights:
    def __init__(self, database: Database, batches: BatchService) -> None:
        self._database = database
        self._batches = batches

    async def timeline(
        self, batch_id: str, *, bucket: float | None = None, project_id: str = DEFAULT_PROJECT_ID
    ) -> dict[str, Any]:
        """Completed and failed results per ``bucket`` seconds (chosen when None), every
        bucket from the first result's to the last one's, empty ones included."""
        await self._batches.get(batch_id, project_id=project_id)
        span = await insights.finished_span(self._database, batch_id)
        if bucket is None:
            seconds = (span[1] - span[0]) if span else 0.0
            bucket = next((b for b in _NICE if seconds / b < AUTO_BUCKETS), _NICE[-1])
        data: list[dict[str, Any]] = []
        if span is not None:
            first, last = math.floor(span[0] / bucket), math.floor(span[1] / bucket)
            if last - first + 1 > MAX_BUCKETS:
                raise InvalidRequest(
                    f"a bucket of {bucket:g} s makes {last - first + 1} buckets over this "
                    f"batch's results; at most {MAX_BUCKETS}: choose a larger bucket",
                    param="bucket",
                    code="invalid_value",
                )
            slots = {
                row.slot: row
                for row in await insights.result_timeline(self._database, batch_id, bucket=bucket)
            }
            for slot in range(first, last + 1):
                row = slots.get(slot)
                data.append(
                    {
                        "start": round(slot * bucket, 3),
                        "completed": row.completed if row else 0,
                        "failed": row.failed if row else 0,
                    }
                )
        return {"object": "batch.timeline", "batch_id": batch_id, "bucket": bucket, "data": data}

    async def error_summary(
        self, batch_id: str, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> dict[str, Any]:
        """The batch's failed results by error code (its category, or why the batch closed),
        the most frequent first, each with its first few examples in line order."""
        await self._batches.get(batch_id, project_id=project_id)
        groups = await insights.error_groups(self._database, batch_id)
        data = []
        for group in groups:
            examples = await insights.error_examples(
                self._database, batch_id, group.code, limit=EXAMPLES
            )
            data.append(
                {
                    "code": group.code,
                    "count": group.count,
                    "examples": [
                        {"custom_id": e.custom_id, "line": e.line, "message": e.message}
                        for e in examples
                    ],
                }
            )
        return {
            "object": "batch.errors_summary",
            "batch_id": batch_id,
            "failed": sum(group.count for group in groups),
            "data": data,
        }
