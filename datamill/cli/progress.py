"""Progress of a running batch: a live bar on a terminal, a plain line every few seconds
elsewhere (CI logs, `nohup`, a file), so a long run never looks dead."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

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


@dataclass(slots=True)
class _Pace:
    """Requests finished per second over the last few readings."""

    samples: deque[tuple[float, int]]

    def add(self, finished: int) -> float:
        self.samples.append((time.monotonic(), finished))
        if len(self.samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


def plain_line(batch: BatchRecord, rate: float, elapsed: float) -> str:
    """One line of progress for a log: status, counts, rate, elapsed time and ETA."""
    finished = batch.completed_count + batch.failed_count
    total = batch.total_count
    parts = [f"{batch.status}: {finished:,}/{total:,} done" if total else f"{batch.status}"]
    parts.append(f"{batch.failed_count:,} failed")
    parts.append(f"{rate:,.0f} req/s" if rate else "- req/s")
    parts.append(f"elapsed {_duration(elapsed)}")
    if rate and total and finished < total:
        parts.append(f"ETA {_duration((total - finished) / rate)}")
    return ", ".join(parts)


def _duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


async def watch_batch(
    runtime: Runtime,
    batch_id: str,
    *,
    stop: asyncio.Event | None = None,
    poll: float = 0.1,
    plain_every: float = 5.0,
) -> BatchRecord:
    """Show progress until the batch reaches a terminal status (or ``stop`` is set): a live
    bar on a terminal, else a plain line every ``plain_every`` seconds and one at the end."""
    if console.is_terminal:
        return await _watch_with_bar(runtime, batch_id, stop, poll)
    return await _watch_with_lines(runtime, batch_id, stop, poll, plain_every)


def _done(batch: BatchRecord, stop: asyncio.Event | None) -> bool:
    return BatchStatus(batch.status).terminal or (stop is not None and stop.is_set())


async def _watch_with_bar(
    runtime: Runtime, batch_id: str, stop: asyncio.Event | None, poll: float
) -> BatchRecord:
    pace = _Pace(deque(maxlen=20))
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
            rate = pace.add(finished)
            progress.update(
                task,
                description=batch.status,
                total=batch.total_count or None,
                completed=finished,
                failed=batch.failed_count,
                rate=f"{rate:,.0f}" if rate else "-",
            )
            if _done(batch, stop):
                return batch
            # Woken at once when this process's worker changes the batch's state.
            await runtime.engine.signal.wait(poll)


async def _watch_with_lines(
    runtime: Runtime,
    batch_id: str,
    stop: asyncio.Event | None,
    poll: float,
    every: float,
) -> BatchRecord:
    start = time.monotonic()
    next_line = start + every
    # The rate over the interval between two lines: what a reader of the log compares.
    pace = _Pace(deque(maxlen=max(2, round(every / poll))))
    while True:
        batch = await runtime.batches.get(batch_id)
        rate = pace.add(batch.completed_count + batch.failed_count)
        now = time.monotonic()
        if _done(batch, stop) or now >= next_line:
            console.print(plain_line(batch, rate, now - start), markup=False)
            next_line = now + every
        if _done(batch, stop):
            return batch
        await runtime.engine.signal.wait(poll)
