"""A batch from upload to output files, on both stores, against a real HTTP provider."""

from __future__ import annotations

from collections import Counter

from tests.conftest import mock_deployment
from tests.helpers import chat_line, jsonl, run_batch


async def test_every_request_ends_in_exactly_one_file(make_runtime, mock_provider):
    runtime = await make_runtime([mock_deployment(mock_provider)])
    lines = [chat_line(f"r{i}") for i in range(200)]
    lines[7] = chat_line("r7", model="reject-me")  # the provider answers 400
    batch, outputs, errors = await run_batch(runtime, jsonl(lines))

    assert batch.status == "completed"
    assert (batch.total_count, batch.completed_count, batch.failed_count) == (200, 199, 1)
    ids = Counter(line["custom_id"] for line in outputs + errors)
    assert set(ids) == {f"r{i}" for i in range(200)}
    assert set(ids.values()) == {1}
    [error] = errors
    assert error["custom_id"] == "r7"
    assert error["response"]["status_code"] == 400
    assert error["response"]["body"]["error"]["param"] == "model"
    # An HTTP answer goes in `response`, never in `error` (OpenAI's rule).
    assert (error["error"], error["datamill_category"]) == (None, "bad_request")
    ok = outputs[0]
    assert ok["response"]["status_code"] == 200
    assert ok["error"] is None
    assert ok["response"]["body"]["object"] == "chat.completion"
    assert batch.input_tokens > 0
    assert batch.output_tokens > 0
    assert mock_provider.stats()["ok_repeats"] == 0
