"""The engine's result writer against each store: one result the store refuses is recorded as
failed, saying why, and never holds up the others (engine/writer.py, on the stores it writes)."""

from __future__ import annotations

import asyncio

from datamill.clock import SystemClock
from datamill.engine.writer import ResultWriter
from datamill.storage.batches import get_batch
from datamill.storage.leasing import lease_requests
from datamill.storage.results import iter_results
from tests.storage.conftest import NOW, make_result


async def test_an_unwritable_result_is_recorded_as_failed_and_the_rest_go_on(database, make_batch):
    batch = await make_batch(3)
    await lease_requests(database, batch_id=batch.id, worker_id="w", limit=3, now=NOW)
    writer = ResultWriter(database, SystemClock(), max_delay=0.01)
    running = asyncio.create_task(writer.run())
    try:
        await asyncio.gather(
            writer.record(make_result(batch, 0, tokens=3)),
            # Past 64 bits: neither SQLite nor PostgreSQL stores it.
            writer.record(make_result(batch, 1, tokens=2**70)),
            writer.record(make_result(batch, 2, tokens=5)),
        )
        # The writer is not wedged: what comes next is recorded as usual.
        assert writer.pending == 0
    finally:
        writer.close()
        await running

    record = await get_batch(database, batch.id)
    assert (record.completed_count, record.failed_count) == (2, 1)
    assert record.input_tokens == 3 + 5 + 2**31 - 1  # the refused row's usage, clamped
    failed = [row async for page in iter_results(database, batch.id, ok=False) for row in page]
    assert len(failed) == 1
    # line, custom_id, status_code, body, provider_request_id, error_code, error_message
    assert failed[0][1] == "c1"
    assert failed[0][5] == "internal_error"
    assert "could not be stored" in failed[0][6]
    assert writer.recorded == 3
