"""A live progress bar for a running batch: done, failed, requests/s, ETA."""

from __future__ import annotations

import asyncio
import time
from collections import deque

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from datamill.cli.common import console
from datamill.protocol.batches import BatchStatus
from datamill.runtime import Runtime
from datamill.storage.records import BatchRecord


def _rate(samples: deque[tuple[float, int]]) -> float:
    if len(samples) < 2:
        return 0.0
    (t0, n0), (t1, n1) = samples[0], samples[-1]
    return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


async def watch_batch(
    runtime: Runtime, batch_id: str, *, stop: asyncio.Event | None = None, poll: float = 0.1
) -> BatchRecord:
    """Show progress until the batch reaches a terminal status (or ``stop`` is set)."""
    samples: deque[tuple[float, int]] = deque(maxlen=20)
    with Progress(
        TextColumn("[bold]{task.description:<11}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[red]{task.fields[failed]} failed"),
        TextColumn("{task.fields[rate]:>7} req/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("validating", total=None, failed=0, rate="-")
        while True:
            batch = await runtime.batches.get(batch_id)
            finished = batch.completed_count + batch.failed_count
            samples.append((time.monotonic(), finished))
            rate = _rate(samples)
            progress.update(
                task,
                description=batch.status,
                total=batch.total_count or None,
                completed=finished,
                failed=batch.failed_count,
                rate=f"{rate:,.0f}" if rate else "-",
            )
            if BatchStatus(batch.status).terminal or (stop is not None and stop.is_set()):
                return batch
            # Woken at once when this process's worker changes the batch's state.
            await runtime.engine.signal.wait(poll)
