"""What `/metrics` reads from the store at scrape time: queue depth and worker heartbeats.

Two small queries: the unfinished batches by status (through the index on ``status``; the
finished ones, however many, are not read) and the running workers.
"""

from __future__ import annotations

from sqlalchemy import func, select

from datamill.metrics.state import QueueDepth, StoreGauges, WorkerBeat
from datamill.storage.database import Database
from datamill.storage.schema import batches, workers

# Batch statuses with work left: a queue's depth is counted over these alone.
UNFINISHED = ("validating", "in_progress", "finalizing", "cancelling")


async def read_store_gauges(database: Database) -> StoreGauges:
    """Unfinished batches per status (every status listed, at zero when none) and the
    workers registered as running."""
    queue = (
        select(
            batches.c.status,
            func.count(),
            func.coalesce(
                func.sum(
                    batches.c.total_count - batches.c.completed_count - batches.c.failed_count
                ),
                0,
            ),
        )
        .where(batches.c.status.in_(UNFINISHED))
        .group_by(batches.c.status)
    )
    running = select(
        workers.c.id, workers.c.kind, workers.c.host, workers.c.heartbeat_at, workers.c.in_flight
    ).where(workers.c.status == "running")
    async with database.read() as conn:
        counted = {row[0]: (int(row[1]), int(row[2])) for row in await conn.execute(queue)}
        beats = (await conn.execute(running)).all()
    return StoreGauges(
        queue=tuple(QueueDepth(status, *counted.get(status, (0, 0))) for status in UNFINISHED),
        workers=tuple(
            WorkerBeat(row.id, row.kind, row.host, float(row.heartbeat_at), int(row.in_flight))
            for row in beats
        ),
    )
