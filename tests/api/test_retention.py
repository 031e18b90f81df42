"""Retention seen through the API: a finished batch whose request rows are gone answers
``GET /v1/batches/{id}`` exactly as before, and its output is still served."""

from __future__ import annotations

from datamill.engine.retention import DAY, apply_retention
from tests.engine.conftest import OffsetClock
from tests.helpers import chat_line, jsonl, running_worker

SIM = [{"name": "sim", "provider": "sim"}]


async def test_a_batch_reads_the_same_after_its_request_rows_go(make_api):
    clock = OffsetClock()
    api = await make_api(SIM, clock=clock, retention_files_days=7, retention_batch_requests_days=7)
    created = await api.submit(jsonl(chat_line(f"r{i}") for i in range(10)))
    async with running_worker(api.runtime):
        before = await api.wait_for(created["id"])
    assert before["status"] == "completed"
    output = await api.client.get(f"/v1/files/{before['output_file_id']}/content")
    clock.jump(8 * DAY)

    retained = await apply_retention(api.runtime.engine, now=clock.now())

    assert (retained.files, retained.batch_requests) == (1, 10)
    assert await api.batch(created["id"]) == before
    assert before["request_counts"] == {"total": 10, "completed": 10, "failed": 0}
    again = await api.client.get(f"/v1/files/{before['output_file_id']}/content")
    assert again.status_code == 200
    assert again.content == output.content
    _, lines = await api.lines(f"/v1/batches/{created['id']}/output")
    assert sorted(line["custom_id"] for line in lines) == sorted(f"r{i}" for i in range(10))
    gone = await api.client.get(f"/v1/files/{before['input_file_id']}")
    assert gone.status_code == 404
