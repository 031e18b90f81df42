"""Validating a batch's input: every bad line is reported with its number, its code and what to
fix; the batch fails, nothing stays staged and nothing reaches the provider."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from datamill.errors import InvalidRequest
from datamill.ids import batch_request_id
from datamill.storage import requests as request_repo
from datamill.storage.results import iter_results
from tests.conftest import mock_deployment
from tests.engine.conftest import assert_each_once
from tests.helpers import CHAT, chat_line, jsonl, output_lines, running_worker, stream, submit

EMBEDDINGS = "/v1/embeddings"
MAX_LINE_BYTES = 4096


def embedding_line(custom_id: str, **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": EMBEDDINGS,
        "body": {"model": "mock-model", "input": f"text {custom_id}", **body},
    }


def without(line: dict[str, Any], *path: str) -> dict[str, Any]:
    """A copy of ``line`` with the key at ``path`` removed."""
    copy = orjson.loads(orjson.dumps(line))
    target = copy
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return dict(copy)


def changed(line: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**line, **fields}


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    # (line, code, param, a fragment of the message that says what to fix)
    expected: list[tuple[int | None, str, str | None, str]]
    endpoint: str = CHAT


A, B, C = chat_line("a"), chat_line("b"), chat_line("c")
DEEP = "[" * 300 + "]" * 300
NOT_UTF8 = orjson.dumps(chat_line("u", text="caf-E")).replace(b"caf-E", b"caf\xe9")

CASES = [
    Case(
        "malformed JSON",
        jsonl([A, '{"custom_id": "b", "method": "POST"', C]),
        [(2, "invalid_json_line", None, "not valid JSON")],
    ),
    Case("JSON array", jsonl([A, "[1, 2]"]), [(2, "invalid_json_line", None, "JSON object")]),
    Case(
        "missing custom_id",
        jsonl([without(A, "custom_id")]),
        [(1, "missing_required_parameter", "custom_id", "custom_id is missing")],
    ),
    Case(
        "non-string custom_id",
        jsonl([A, changed(B, custom_id=42)]),
        [(2, "missing_required_parameter", "custom_id", "must be a non-empty string")],
    ),
    Case(
        "duplicate custom_id",
        jsonl([A, B, changed(C, custom_id="a")]),
        [(3, "duplicate_custom_id", "custom_id", "'a' is already used on line 1")],
    ),
    Case(
        "method GET",
        jsonl([changed(A, method="GET")]),
        [(1, "invalid_method", "method", 'method must be "POST"')],
    ),
    Case(
        "url is another endpoint",
        jsonl([A, changed(B, url=EMBEDDINGS)]),
        [(2, "invalid_url", "url", "does not match the batch endpoint '/v1/chat/completions'")],
    ),
    Case(
        "url without /v1",
        jsonl([changed(A, url="/chat/completions")]),
        [(1, "invalid_url", "url", "'/chat/completions' does not match")],
    ),
    Case(
        "missing body",
        jsonl([without(A, "body")]),
        [(1, "missing_required_parameter", "body", "body is missing")],
    ),
    Case(
        "body is not an object",
        jsonl([changed(A, body="hello")]),
        [(1, "missing_required_parameter", "body", "body must be a JSON object")],
    ),
    Case(
        "body.model is not a string",
        jsonl([changed(A, body={**A["body"], "model": 42})]),
        [(1, "missing_required_parameter", "body.model", "body.model must be a non-empty string")],
    ),
    Case(
        "missing body.model",
        jsonl([without(A, "body", "model")]),
        [(1, "missing_required_parameter", "body.model", "body.model is missing")],
    ),
    Case(
        "chat without messages",
        jsonl([A, without(B, "body", "messages")]),
        [(2, "missing_required_parameter", "body.messages", "body.messages is missing")],
    ),
    Case(
        "embeddings without input",
        jsonl([embedding_line("e1"), without(embedding_line("e2"), "body", "input")]),
        [(2, "missing_required_parameter", "body.input", "body.input is missing")],
        endpoint=EMBEDDINGS,
    ),
    Case(
        "model no deployment serves",
        jsonl([A, chat_line("b", model="other-model")]),
        [(2, "model_not_found", "body.model", "no deployment serves model 'other-model'")],
    ),
    Case("empty file", b"", [(None, "empty_file", None, "the input file has no requests")]),
    Case(
        "only blank lines",
        b"\n  \n\t\r\n\n",
        [(None, "empty_file", None, "the input file has no requests")],
    ),
    Case("not UTF-8", jsonl([A, NOT_UTF8]), [(2, "invalid_utf8", None, "not valid UTF-8")]),
    Case(
        "oversized line",
        jsonl([A, chat_line("big", text="x" * (MAX_LINE_BYTES + 10)), C]),
        [(2, "line_too_large", None, f"longer than {MAX_LINE_BYTES} bytes")],
    ),
    Case(
        "oversized last line without newline",
        jsonl([A]) + orjson.dumps(chat_line("big", text="x" * (MAX_LINE_BYTES + 10))),
        [(2, "line_too_large", None, "DATAMILL_MAX_LINE_BYTES")],
    ),
    # orjson would read it (1,024 levels) but not write it again (255): once an internal_error.
    Case(
        "a body nested 300 levels deep",
        jsonl([A, orjson.dumps(B).decode().replace('"body":{', f'"body":{{"x":{DEEP},'), C]),
        [(2, "invalid_json_line", None, "more than 128 levels deep")],
    ),
    # PostgreSQL's text cannot hold NUL: once a 500 there.
    Case(
        "custom_id with a NUL character",
        jsonl([A, changed(B, custom_id="b\x00"), C]),
        [(2, "invalid_value", "custom_id", "custom_id holds a NUL character")],
    ),
    Case(
        "blank lines keep the numbering",
        jsonl([A, "", "   ", changed(B, method="PUT"), "", C, without(chat_line("d"), "body")]),
        [
            (4, "invalid_method", "method", "'PUT'"),
            (7, "missing_required_parameter", "body", "body is missing"),
        ],
    ),
]


@pytest.fixture
async def runtime(make_runtime, mock_provider):
    # Not pass-through: only "mock-model" is served, so other models fail validation.
    deployment = mock_deployment(mock_provider, model="mock-model")
    return await make_runtime([deployment], max_line_bytes=MAX_LINE_BYTES)


async def staged(runtime, batch_id: str) -> tuple[dict[str, int], int]:
    """(request rows by state, result rows) left for a batch."""
    results = 0
    for ok in (True, False):
        results += sum(
            [len(page) async for page in iter_results(runtime.database, batch_id, ok=ok)]
        )
    return await request_repo.count_unfinished(runtime.database, batch_id), results


async def test_each_bad_input_fails_the_batch_naming_line_code_and_fix(runtime, mock_provider):
    batches = {
        case.name: await submit(runtime, case.data, endpoint=case.endpoint) for case in CASES
    }
    async with running_worker(runtime):
        for name, batch in batches.items():
            batches[name] = await runtime.batches.wait(batch.id, timeout=60, poll=0.05)

    problems = []
    for case in CASES:
        batch = batches[case.name]
        got = [(e["line"], e["code"], e["param"], e["message"]) for e in batch.errors or []]
        wanted = [(line, code, param) for line, code, param, _ in case.expected]
        if batch.status != "failed" or [g[:3] for g in got] != wanted:
            problems.append(f"{case.name}: {batch.status}, errors {got}, wanted {wanted}")
            continue
        for (_, _, _, message), (*_, fragment) in zip(got, case.expected, strict=True):
            if fragment not in message:
                problems.append(f"{case.name}: message {message!r} lacks {fragment!r}")
        if batch.failed_at is None or batch.output_file_id or batch.error_file_id:
            problems.append(f"{case.name}: failed_at/output files wrong: {batch}")
        if await staged(runtime, batch.id) != ({}, 0):
            problems.append(f"{case.name}: rows left behind: {await staged(runtime, batch.id)}")
    assert not problems, "\n".join(problems)
    assert mock_provider.stats()["total"] == 0


async def test_more_than_100_bad_lines_lists_100_and_counts_the_rest(runtime, mock_provider):
    lines = [changed(chat_line(f"r{i}"), method="GET") for i in range(150)]
    batch = await submit(runtime, jsonl(lines))
    async with running_worker(runtime):
        batch = await runtime.batches.wait(batch.id, timeout=60, poll=0.05)

    assert batch.status == "failed"
    errors = batch.errors or []
    assert len(errors) == 101
    assert [e["line"] for e in errors[:100]] == list(range(1, 101))
    assert {e["code"] for e in errors[:100]} == {"invalid_method"}
    assert errors[100]["code"] == "too_many_errors"
    assert errors[100]["line"] is None
    assert "50 more errors" in errors[100]["message"]
    assert await staged(runtime, batch.id) == ({}, 0)
    assert mock_provider.stats()["total"] == 0


async def test_blank_lines_are_skipped_and_line_numbers_kept(runtime, mock_provider):
    # CRLF endings and a last line without a newline are fine too.
    data = jsonl([chat_line("a"), "", "  "]) + orjson.dumps(chat_line("b")) + b"\r\n\n"
    data += orjson.dumps(chat_line("c"))
    batch = await submit(runtime, data)
    async with running_worker(runtime):
        batch = await runtime.batches.wait(batch.id, timeout=60, poll=0.05)

    assert batch.status == "completed", batch.errors
    assert batch.total_count == 3
    outputs = await output_lines(runtime, batch.output_file_id)
    assert_each_once(outputs, [], ["a", "b", "c"])
    assert {line["custom_id"]: line["id"] for line in outputs} == {
        "a": batch_request_id(batch.id, 1),
        "b": batch_request_id(batch.id, 4),
        "c": batch_request_id(batch.id, 6),
    }
    assert mock_provider.stats()["total"] == 3


async def test_upload_refuses_a_batch_file_over_the_line_limit(make_runtime, mock_provider):
    runtime = await make_runtime([mock_deployment(mock_provider)], max_file_lines=3)
    data = jsonl([chat_line(f"r{i}") for i in range(4)])
    with pytest.raises(InvalidRequest) as caught:
        await runtime.files.upload(stream(data), filename="big.jsonl", purpose="batch")
    assert caught.value.code == "too_many_requests"
    assert "at most 3" in caught.value.message
    assert "DATAMILL_MAX_FILE_LINES" in caught.value.message
    files, _ = await runtime.files.list()
    assert files == []


async def test_validator_enforces_the_line_limit_of_the_worker(make_runtime, mock_provider):
    # The upload checks the limit it runs with; a worker configured with a lower limit (the
    # server restarted with another DATAMILL_MAX_FILE_LINES) still refuses the batch.
    deployment = mock_deployment(mock_provider)
    uploader = await make_runtime([deployment])
    worker_side = await make_runtime([deployment], max_file_lines=3)
    batch = await submit(uploader, jsonl([chat_line(f"r{i}") for i in range(5)]))
    async with running_worker(worker_side):
        batch = await worker_side.batches.wait(batch.id, timeout=60, poll=0.05)

    assert batch.status == "failed"
    [error] = batch.errors or []
    assert (error["line"], error["code"]) == (4, "too_many_requests")
    assert "more than 3 requests" in error["message"]
    assert "split it into several batches" in error["message"]
    assert await staged(worker_side, batch.id) == ({}, 0)
    assert mock_provider.stats()["total"] == 0


async def test_more_than_100_duplicates_are_all_counted(runtime, mock_provider):
    lines = [chat_line(f"r{i}") for i in range(150)] + [chat_line(f"r{i}") for i in range(150)]
    batch = await submit(runtime, jsonl(lines))
    async with running_worker(runtime):
        batch = await runtime.batches.wait(batch.id, timeout=60, poll=0.05)

    assert batch.status == "failed"
    errors = batch.errors or []
    assert len(errors) == 101
    assert [(e["line"], e["code"]) for e in errors[:2]] == [
        (151, "duplicate_custom_id"),
        (152, "duplicate_custom_id"),
    ]
    assert "'r0' is already used on line 1" in errors[0]["message"]
    assert errors[100]["code"] == "too_many_errors"
    assert "50 more errors" in errors[100]["message"]
    assert await staged(runtime, batch.id) == ({}, 0)
    assert mock_provider.stats()["total"] == 0


async def test_a_file_staged_in_many_chunks_runs_each_line_once(runtime, mock_provider):
    # Over four staging chunks, staged two at a time on PostgreSQL, with blank lines between.
    lines = [chat_line(f"r{i}") for i in range(9_000)]
    data = b"\n".join(
        orjson.dumps(line) + (b"\n" if i % 1000 == 0 else b"") for i, line in enumerate(lines)
    )
    batch = await submit(runtime, data)
    async with running_worker(runtime):
        batch = await runtime.batches.wait(batch.id, timeout=120, poll=0.05)

    assert batch.status == "completed", batch.errors
    assert batch.total_count == 9_000
    outputs = await output_lines(runtime, batch.output_file_id)
    assert_each_once(outputs, [], [line["custom_id"] for line in lines])
    assert mock_provider.stats()["total"] == 9_000


async def test_a_duplicate_in_a_later_chunk_fails_the_batch_and_unstages_all(
    runtime, mock_provider
):
    lines = [chat_line(f"r{i}") for i in range(7_000)] + [chat_line("r1")]
    batch = await submit(runtime, jsonl(lines))
    async with running_worker(runtime):
        batch = await runtime.batches.wait(batch.id, timeout=60, poll=0.05)

    assert batch.status == "failed"
    assert [(e["line"], e["code"]) for e in batch.errors or []] == [(7_001, "duplicate_custom_id")]
    assert await staged(runtime, batch.id) == ({}, 0)
    assert mock_provider.stats()["total"] == 0
