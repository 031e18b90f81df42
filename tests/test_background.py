"""The background writer both the event publisher and the gateway's call log are built on:
queued items written by its task in batches, in order, a failed write retried with nothing
lost, and what is left written at close."""

from __future__ import annotations

import asyncio
import logging

from datamill.background import BackgroundWriter, WriterTiming
from datamill.clock import SystemClock
from datamill.supervisor import Supervisor

log = logging.getLogger("tests.background")


class ListWriter(BackgroundWriter[int]):
    """Writes its items to a list; ``refuse`` writes fail; each write is counted."""

    def __init__(
        self, timing: WriterTiming, *, wake_each: bool = True, max_pending: int = 1000
    ) -> None:
        super().__init__(
            SystemClock(),
            timing,
            name="list-writer",
            items="items",
            log=log,
            max_pending=max_pending,
        )
        self.stored: list[int] = []
        self.writes = 0
        self.refuse = 0  # this many writes fail
        self.wake_each = wake_each
        self.written = asyncio.Event()

    def add(self, item: int) -> None:
        self._enqueue(item)
        if self.wake_each:
            self._wake()
        else:
            self._start()

    async def _write(self) -> None:
        if not self.pending:
            return
        items = self._take()
        if self.refuse:
            self.refuse -= 1
            self._put_back(items)
            raise OSError("the store is away")
        self.stored.extend(items)
        self.writes += 1
        self.written.set()


async def stored(writer: ListWriter, count: int) -> list[int]:
    async with asyncio.timeout(10):
        while len(writer.stored) < count:
            writer.written.clear()
            await writer.written.wait()
    return writer.stored


async def test_items_are_written_in_order_and_a_burst_costs_one_write():
    writer = ListWriter(WriterTiming(min_gap=0.05))
    for n in range(100):
        writer.add(n)  # one burst, before the task first runs
    assert await stored(writer, 100) == list(range(100))
    assert writer.writes == 1
    writer.add(100)
    assert await stored(writer, 101) == list(range(101))
    await writer.aclose()


async def test_a_writer_without_wakes_writes_every_interval():
    writer = ListWriter(WriterTiming(interval=0.05), wake_each=False)
    writer.add(1)
    writer.add(2)
    assert await stored(writer, 2) == [1, 2]
    await writer.aclose()


async def test_a_failing_write_is_retried_and_loses_nothing(caplog):
    writer = ListWriter(WriterTiming(retry_first=0.01, retry_most=0.02))
    writer.refuse = 3
    writer.add(1)
    writer.add(2)
    assert await stored(writer, 2) == [1, 2]
    assert writer.refuse == 0
    assert "could not write 2 items; retrying" in caplog.text
    await writer.aclose()


async def test_close_writes_what_is_left_and_stops_the_task():
    writer = ListWriter(WriterTiming(interval=3600), wake_each=False)
    writer.add(1)  # the task waits an hour before writing it
    await writer.aclose()
    assert writer.stored == [1]
    writer.add(2)  # after the close: queued, no task started again
    assert writer._task is None
    await writer.flush()
    assert writer.stored == [1, 2]


async def test_close_logs_what_the_store_refused(caplog):
    writer = ListWriter(WriterTiming(interval=3600), wake_each=False)
    writer.add(1)
    writer.refuse = 1
    await writer.aclose()
    assert "could not write the last 1 items" in caplog.text
    assert writer.pending == 1


async def test_beyond_max_pending_the_oldest_items_are_dropped_with_a_warning(caplog):
    writer = ListWriter(WriterTiming(interval=3600), wake_each=False, max_pending=3)
    for n in range(5):
        writer.add(n)
    assert "items are not being written: dropping the oldest" in caplog.text
    await writer.aclose()
    assert writer.stored == [2, 3, 4]


async def test_a_supervised_writer_runs_as_a_named_side_task_and_stops_there():
    supervisor = Supervisor(SystemClock(), owner="test")
    writer = ListWriter(WriterTiming())
    writer.supervise(supervisor)
    assert supervisor.running("list-writer")

    writer.add(1)
    assert await stored(writer, 1) == [1]
    writer.add(2)
    await writer.aclose()

    assert writer.stored == [1, 2]
    assert supervisor.names == []  # stopped by name, not left running
