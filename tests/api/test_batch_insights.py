"""A batch's timeline and error summary (the dashboard's batch page) on both stores, from
real runs."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, update

from datamill.storage.schema import results
from tests.api.conftest import assert_error
from tests.conftest import mock_deployment
from tests.helpers import chat_line, jsonl, running_worker


async def run_mixed_batch(api, mock) -> dict[str, Any]:
    """20 lines: 3 refused by the provider (bad_request), 2 answered 500 with no retry left
    (server_error), the rest fine."""
    lines = [chat_line(f"r{i}", model="reject-me" if i in (4, 9, 14) else "m") for i in range(20)]
    mock.control(fail_next=2)
    batch = await api.submit(jsonl(lines), datamill={"max_retries": 0})
    async with running_worker(api.runtime, concurrency=1):
        return await api.wait_for(batch["id"])


async def test_a_batch_s_timeline_counts_every_result_once(make_api, mock):
    api = await make_api([mock_deployment(mock)])
    batch = await run_mixed_batch(api, mock)

    response = await api.client.get(f"/api/batches/{batch['id']}/timeline", params={"bucket": 1})
    assert response.status_code == 200, response.text
    timeline = response.json()
    assert (timeline["object"], timeline["batch_id"], timeline["bucket"]) == (
        "batch.timeline",
        batch["id"],
        1,
    )
    slots = timeline["data"]
    assert sum(s["completed"] for s in slots) == batch["request_counts"]["completed"] == 15
    assert sum(s["failed"] for s in slots) == batch["request_counts"]["failed"] == 5
    starts = [s["start"] for s in slots]
    assert starts == [starts[0] + i for i in range(len(starts))]  # every bucket, in order


async def test_the_timeline_fills_empty_buckets_and_chooses_a_bucket(make_api, mock):
    api = await make_api([mock_deployment(mock)])
    batch = await api.submit(jsonl(chat_line(f"r{i}") for i in range(4)))
    async with running_worker(api.runtime):
        batch = await api.wait_for(batch["id"])
    # The last result an hour after the others: a long quiet gap in the chart.
    async with api.runtime.database.write() as conn:
        last = await conn.scalar(
            select(func.max(results.c.line)).where(results.c.batch_id == batch["id"])
        )
        await conn.execute(
            update(results)
            .where(results.c.batch_id == batch["id"], results.c.line == last)
            .values(finished_at=results.c.finished_at + 3600)
        )
    path = f"/api/batches/{batch['id']}/timeline"

    chosen = (await api.client.get(path)).json()
    assert chosen["bucket"] == 60  # the smallest round size giving at most 120 buckets
    assert 61 <= len(chosen["data"]) <= 62
    assert sum(s["completed"] for s in chosen["data"]) == 4
    assert sum(1 for s in chosen["data"] if s["completed"]) <= 3  # the gap is zeros

    too_fine = await api.client.get(path, params={"bucket": 0.1})
    assert_error(too_fine, 400, param="bucket", code="invalid_value")


@pytest.mark.parametrize("bucket", ["0", "-5", "soon", "86401"])
async def test_a_bad_bucket_is_refused(make_api, bucket):
    api = await make_api()
    batch = await api.submit(jsonl([chat_line("a")]))
    response = await api.client.get(
        f"/api/batches/{batch['id']}/timeline", params={"bucket": bucket}
    )
    assert_error(response, 400, param="bucket")


async def test_errors_are_summarised_by_category_with_examples(make_api, mock):
    api = await make_api([mock_deployment(mock)])
    batch = await run_mixed_batch(api, mock)

    response = await api.client.get(f"/api/batches/{batch['id']}/errors/summary")
    assert response.status_code == 200, response.text
    summary = response.json()
    assert (summary["object"], summary["failed"]) == ("batch.errors_summary", 5)
    [refused, server] = summary["data"]
    assert (refused["code"], refused["count"]) == ("bad_request", 3)
    assert [(e["custom_id"], e["line"]) for e in refused["examples"]] == [
        ("r4", 5),
        ("r9", 10),
        ("r14", 15),
    ]
    assert "refused by the mock" in refused["examples"][0]["message"]
    assert (server["code"], server["count"], len(server["examples"])) == ("server_error", 2, 2)


async def test_a_batch_without_failures_has_an_empty_summary_and_timeline(make_api):
    api = await make_api()
    batch = await api.submit(jsonl([chat_line("a")]))  # never run: no result yet

    summary = (await api.client.get(f"/api/batches/{batch['id']}/errors/summary")).json()
    timeline = (await api.client.get(f"/api/batches/{batch['id']}/timeline")).json()
    assert (summary["failed"], summary["data"]) == (0, [])
    assert timeline["data"] == []


@pytest.mark.parametrize("path", ["timeline", "errors/summary"])
async def test_an_unknown_batch_is_a_404(make_api, path):
    api = await make_api()
    response = await api.client.get(f"/api/batches/batch_nope/{path}")
    assert_error(response, 404, param="batch_id", code="not_found")
