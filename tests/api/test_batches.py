"""`/v1/batches` through HTTP, on both stores, with a worker against the mock provider."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from datamill.clock import SystemClock
from tests.api.conftest import assert_error
from tests.conftest import mock_deployment
from tests.helpers import CHAT, chat_line, jsonl, running_worker

BATCH_FIELDS = {
    "id",
    "object",
    "endpoint",
    "model",
    "errors",
    "input_file_id",
    "completion_window",
    "status",
    "output_file_id",
    "error_file_id",
    "created_at",
    "in_progress_at",
    "expires_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
    "request_counts",
    "usage",
    "metadata",
    "datamill",
}
LATER_TIMESTAMPS = (
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)


def refused_line(custom_id: str) -> dict:
    """A line datamill accepts and the mock refuses with a 400 (same model as the others)."""
    return chat_line(custom_id, messages=["not an object"])


async def test_batch_lifecycle_field_for_field(make_api, mock):
    api = await make_api([mock_deployment(mock)])
    lines = [chat_line(f"r{i}") for i in range(5)] + [refused_line("bad")]
    file = await api.upload(jsonl(lines))
    before = int(time.time())

    created = await api.create_batch(file["id"], metadata={"job": "nightly", "owner": "api"})

    assert set(created) == BATCH_FIELDS
    assert created["id"].startswith("batch_")
    assert created["object"] == "batch"
    assert created["endpoint"] == CHAT
    assert created["model"] is None
    assert created["errors"] is None
    assert created["input_file_id"] == file["id"]
    assert created["completion_window"] == "24h"
    assert created["status"] == "validating"
    assert created["output_file_id"] is None
    assert created["error_file_id"] is None
    assert before - 1 <= created["created_at"] <= int(time.time()) + 1
    assert created["expires_at"] == created["created_at"] + 24 * 3600
    assert all(created[name] is None for name in LATER_TIMESTAMPS)
    assert created["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert created["usage"] == {
        "input_tokens": 0,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 0,
    }
    assert created["metadata"] == {"job": "nightly", "owner": "api"}
    assert await api.batch(created["id"]) == created

    async with running_worker(api.runtime):
        done = await api.wait_for(created["id"])

    assert done["status"] == "completed", done
    assert done["model"] == "mock-model"
    assert done["errors"] is None
    assert done["request_counts"] == {"total": 6, "completed": 5, "failed": 1}
    stamps = [done[n] for n in ("created_at", "in_progress_at", "finalizing_at", "completed_at")]
    assert all(isinstance(stamp, int) for stamp in stamps), done
    assert stamps == sorted(stamps)
    assert all(
        done[n] is None for n in ("failed_at", "expired_at", "cancelling_at", "cancelled_at")
    )
    usage = done["usage"]
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert done["metadata"] == created["metadata"]

    # Output and error files are ordinary files with purpose batch_output.
    for file_id in (done["output_file_id"], done["error_file_id"]):
        assert file_id.startswith("file-")
        output_file = (await api.client.get(f"/v1/files/{file_id}")).json()
        assert output_file["purpose"] == "batch_output"
    _, outputs = await api.lines(f"/v1/files/{done['output_file_id']}/content")
    _, errors = await api.lines(f"/v1/files/{done['error_file_id']}/content")
    assert Counter(line["custom_id"] for line in outputs + errors) == Counter(
        line["custom_id"] for line in lines
    )
    for line in outputs:
        assert set(line) == {"id", "custom_id", "response", "error"}
        assert line["id"].startswith("batch_req_")
        assert line["error"] is None
        assert line["response"]["status_code"] == 200
        assert line["response"]["body"]["object"] == "chat.completion"
    [error] = errors
    assert error["custom_id"] == "bad"
    assert error["response"]["status_code"] == 400
    assert error["response"]["body"]["error"]["param"] == "messages"
    assert (error["error"], error["datamill_category"]) == (None, "bad_request")

    # The datamill extension serves the same lines once the batch is done.
    for kind, file_id in (("output", done["output_file_id"]), ("errors", done["error_file_id"])):
        served = await api.client.get(f"/v1/batches/{done['id']}/{kind}")
        assert served.headers["x-datamill-partial"] == "false"
        stored = await api.client.get(f"/v1/files/{file_id}/content")
        assert sorted(served.content.splitlines()) == sorted(stored.content.splitlines())


async def test_partial_results_while_the_batch_runs(make_api, mock):
    api = await make_api([mock_deployment(mock)])
    mock.control(latency_ms=300)
    # The refused line is answered at once, without the latency, and comes first.
    lines = [refused_line("bad")] + [chat_line(f"r{i}") for i in range(8)]
    batch = await api.submit(jsonl(lines))

    async with running_worker(api.runtime, concurrency=1):
        running = await api.wait_for(batch["id"], lambda b: b["status"] != "validating")
        assert running["status"] == "in_progress"
        assert running["in_progress_at"] is not None
        assert running["request_counts"]["total"] == 9

        partial_outputs: list[dict] = []
        deadline = time.monotonic() + 30
        while not partial_outputs:
            assert time.monotonic() < deadline, "no partial output line"
            before = await api.batch(batch["id"])
            response, partial_outputs = await api.lines(f"/v1/batches/{batch['id']}/output")
            after = await api.batch(batch["id"])
        if after["status"] == "in_progress":
            # Still running on both sides of the call: the answer must say it is partial.
            assert before["status"] == "in_progress"
            assert response.headers["x-datamill-partial"] == "true"
            assert len(partial_outputs) <= after["request_counts"]["completed"] < 8
        partial_errors: list[dict] = []
        while not partial_errors:
            assert time.monotonic() < deadline, "no partial error line"
            _, partial_errors = await api.lines(f"/v1/batches/{batch['id']}/errors")
        assert [line["custom_id"] for line in partial_errors] == ["bad"]

        done = await api.wait_for(batch["id"])

    assert done["status"] == "completed"
    response, outputs = await api.lines(f"/v1/batches/{batch['id']}/output")
    assert response.headers["x-datamill-partial"] == "false"
    assert sorted(line["custom_id"] for line in outputs) == sorted(f"r{i}" for i in range(8))
    assert {line["custom_id"] for line in partial_outputs} <= {f"r{i}" for i in range(8)}


async def test_list_pages_newest_first(make_api):
    api = await make_api()
    file = await api.upload(jsonl([chat_line("a")]))
    ids = [(await api.create_batch(file["id"]))["id"] for _ in range(5)]
    newest_first = ids[::-1]

    async def page(**params):
        response = await api.client.get("/v1/batches", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    everything = await page()
    assert everything["object"] == "list"
    assert [b["id"] for b in everything["data"]] == newest_first
    assert everything["has_more"] is False
    assert (everything["first_id"], everything["last_id"]) == (newest_first[0], newest_first[-1])

    seen: list[str] = []
    after = None
    pages = 0
    while True:
        body = await page(limit=2, **({"after": after} if after else {}))
        pages += 1
        seen += [b["id"] for b in body["data"]]
        assert body["first_id"] == body["data"][0]["id"]
        assert body["last_id"] == body["data"][-1]["id"]
        if not body["has_more"]:
            break
        after = body["last_id"]
    assert seen == newest_first
    assert pages == 3


async def test_cancel_while_validating_then_twice_then_after_completion(make_api, mock):
    api = await make_api([mock_deployment(mock)])
    batch = await api.submit(jsonl([chat_line(f"r{i}") for i in range(3)]))

    first = await api.client.post(f"/v1/batches/{batch['id']}/cancel")
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "cancelling"
    assert first.json()["cancelling_at"] is not None
    again = await api.client.post(f"/v1/batches/{batch['id']}/cancel")
    assert again.status_code == 200
    assert again.json()["status"] in {"cancelling", "cancelled"}

    async with running_worker(api.runtime):
        cancelled = await api.wait_for(batch["id"])
        assert cancelled["status"] == "cancelled", cancelled
        assert cancelled["cancelled_at"] is not None
        assert cancelled["cancelled_at"] >= cancelled["cancelling_at"]
        assert cancelled["completed_at"] is None
        once_more = await api.client.post(f"/v1/batches/{batch['id']}/cancel")
        assert once_more.status_code == 200
        assert once_more.json()["status"] == "cancelled"

        finished = await api.submit(jsonl([chat_line("x")]))
        finished = await api.wait_for(finished["id"])
        assert finished["status"] == "completed"
    refused = await api.client.post(f"/v1/batches/{finished['id']}/cancel")
    error = assert_error(refused, 409, param="batch_id", code="batch_not_cancellable")
    assert "completed" in error["message"]
    assert (await api.batch(finished["id"]))["status"] == "completed"


async def test_cancel_while_in_progress_keeps_every_line_once(make_api, mock):
    api = await make_api([mock_deployment(mock)])
    mock.control(latency_ms=400)
    lines = [chat_line(f"r{i}") for i in range(12)]
    batch = await api.submit(jsonl(lines))

    async with running_worker(api.runtime, concurrency=2):
        await api.wait_for(batch["id"], lambda b: b["status"] == "in_progress")
        response = await api.client.post(f"/v1/batches/{batch['id']}/cancel")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "cancelling"
        done = await api.wait_for(batch["id"])

    assert done["status"] == "cancelled"
    counts = done["request_counts"]
    assert counts["total"] == 12
    assert counts["completed"] + counts["failed"] == 12
    assert counts["failed"] > 0  # some requests were never sent
    _, outputs = await api.lines(f"/v1/batches/{batch['id']}/output")
    _, errors = await api.lines(f"/v1/batches/{batch['id']}/errors")
    assert Counter(line["custom_id"] for line in outputs + errors) == Counter(
        line["custom_id"] for line in lines
    )
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}
    assert len(outputs) == counts["completed"]


async def test_idempotency_key(make_api):
    api = await make_api()
    file = await api.upload(jsonl([chat_line("a")]))
    other = await api.upload(jsonl([chat_line("b")]))
    key = {"Idempotency-Key": "nightly-2026-11-25"}

    first = await api.create_batch(file["id"], headers=key)
    second = await api.create_batch(file["id"], headers=key)
    assert second["id"] == first["id"]
    assert len((await api.client.get("/v1/batches")).json()["data"]) == 1

    reused = await api.client.post(
        "/v1/batches",
        json={"input_file_id": other["id"], "endpoint": CHAT, "completion_window": "24h"},
        headers=key,
    )
    error = assert_error(reused, 409, param="Idempotency-Key", code="idempotency_key_reused")
    assert first["id"] in error["message"]
    # Without the key, or with another one, a new batch starts.
    assert (await api.create_batch(file["id"]))["id"] != first["id"]
    assert (await api.create_batch(file["id"], headers={"Idempotency-Key": "k2"}))["id"] not in {
        first["id"]
    }


@pytest.mark.parametrize(
    ("changed", "differs"),
    [
        ({"metadata": {"run": "b"}}, "metadata"),
        ({"metadata": {"run": "a"}, "datamill": {"max_retries": 1}}, "options"),
        (
            {
                "metadata": {"run": "a"},
                "output_expires_after": {"anchor": "created_at", "seconds": 3600},
            },
            "options",
        ),
    ],
)
async def test_idempotency_key_reused_with_other_options(make_api, changed, differs):
    api = await make_api()
    file = await api.upload(jsonl([chat_line("a")]))
    key = {"Idempotency-Key": "same-key"}
    first = await api.create_batch(file["id"], headers=key, metadata={"run": "a"})
    # The same request again is the same batch.
    again = await api.create_batch(file["id"], headers=key, metadata={"run": "a"})
    assert again["id"] == first["id"]

    payload = {"input_file_id": file["id"], "endpoint": CHAT, "completion_window": "24h", **changed}
    reused = await api.client.post("/v1/batches", json=payload, headers=key)
    error = assert_error(reused, 409, param="Idempotency-Key", code="idempotency_key_reused")
    assert first["id"] in error["message"]
    assert differs in error["message"]
    assert len((await api.client.get("/v1/batches")).json()["data"]) == 1


async def test_datamill_options_are_applied(make_api, mock):
    api = await make_api([mock_deployment(mock)])
    # One 500 answer: with max_retries=0 it is final instead of retried.
    mock.control(fail_next=1, error_status=500)
    batch = await api.submit(jsonl([chat_line("only")]), datamill={"max_retries": 0})

    async with running_worker(api.runtime):
        done = await api.wait_for(batch["id"])

    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 1, "completed": 0, "failed": 1}
    _, [error] = await api.lines(f"/v1/batches/{batch['id']}/errors")
    assert (error["error"], error["datamill_category"]) == (None, "server_error")
    assert error["response"]["status_code"] == 500
    assert mock.stats()["total"] == 1

    unknown = await api.client.post(
        "/v1/batches",
        json={
            "input_file_id": done["input_file_id"],
            "endpoint": CHAT,
            "completion_window": "24h",
            "datamill": {"max_retries": 0, "speed": "ludicrous"},
        },
    )
    assert_error(unknown, 400, param="datamill.speed")


async def test_output_expires_after_sets_the_output_files_expiry(make_api, mock):
    api = await make_api([mock_deployment(mock)])
    lines = [chat_line("ok"), chat_line("bad", model="reject-me")]
    batch = await api.submit(
        jsonl(lines), output_expires_after={"anchor": "created_at", "seconds": 7200}
    )

    async with running_worker(api.runtime):
        done = await api.wait_for(batch["id"])

    for file_id in (done["output_file_id"], done["error_file_id"]):
        file = (await api.client.get(f"/v1/files/{file_id}")).json()
        assert file["purpose"] == "batch_output"
        assert file["expires_at"] - file["created_at"] in {7199, 7200, 7201}
    plain = await api.submit(jsonl([chat_line("again")]))
    async with running_worker(api.runtime):
        plain_done = await api.wait_for(plain["id"])
    output = (await api.client.get(f"/v1/files/{plain_done['output_file_id']}")).json()
    assert output["expires_at"] is None


class ShiftedClock(SystemClock):
    """The system clock, moved forward by ``offset`` seconds on demand."""

    offset = 0.0

    def now(self) -> float:
        return super().now() + self.offset


async def test_a_batch_past_its_window_expires(make_api, mock):
    clock = ShiftedClock()
    api = await make_api([mock_deployment(mock)], clock=clock)
    mock.control(hang_rate=1)
    batch = await api.submit(jsonl([chat_line("a"), chat_line("b")]))

    async with running_worker(api.runtime):
        await api.wait_for(batch["id"], lambda b: b["status"] == "in_progress")
        clock.offset = 25 * 3600
        done = await api.wait_for(batch["id"])

    assert done["status"] == "expired", done
    assert done["expired_at"] >= done["expires_at"]
    assert done["finalizing_at"] is not None
    assert done["completed_at"] is None
    assert done["request_counts"] == {"total": 2, "completed": 0, "failed": 2}
    assert done["output_file_id"] is None
    _, errors = await api.lines(f"/v1/files/{done['error_file_id']}/content")
    assert sorted(line["custom_id"] for line in errors) == ["a", "b"]
    assert {line["error"]["code"] for line in errors} == {"batch_expired"}


async def test_finished_batch_lines_survive_deleting_its_output_file(make_api, mock):
    api = await make_api([mock_deployment(mock)])
    batch = await api.submit(jsonl([chat_line(f"r{n}") for n in range(5)]))
    async with running_worker(api.runtime):
        done = await api.wait_for(batch["id"])
    _, stored = await api.lines(f"/v1/batches/{batch['id']}/output")

    deleted = await api.client.delete(f"/v1/files/{done['output_file_id']}")

    assert deleted.status_code == 200
    _, rendered = await api.lines(f"/v1/batches/{batch['id']}/output")
    assert rendered == stored
    assert sorted(line["custom_id"] for line in rendered) == [f"r{n}" for n in range(5)]
