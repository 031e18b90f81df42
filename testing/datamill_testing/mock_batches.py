"""The mock provider's Files and Batches API, in OpenAI's wire format.

An upstream batch moves one step per retrieve (``GET /v1/batches/{id}``), as a client
polling sees it: the first retrieve validates its input file (``failed`` with ``errors``
when a line is bad, or when ``batch_fail_next`` says so), then each retrieve runs the next
share of its lines, so that it ends on retrieve number ``batch_polls``. Lines are answered
by the same logic as the chat and embeddings endpoints (a refused model, a malformed body)
and counted per key like them; ``batch_fail_lines`` makes the next lines fail with
``batch_line_error_status``, and ``batch_expire_next`` makes the next batches expire with
only a ``batch_expire_processed`` share of their lines run (the rest go to the error file
as ``batch_expired``, as OpenAI writes them). A cancel takes effect at the next retrieve:
``cancelled``, with the lines run so far. The switches live in `MockConfig`, so tests flip
them through ``POST /control``; ``GET /stats`` counts batches created and lines run.

Nothing here touches the chat hot path: these routes only add state of their own.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

if TYPE_CHECKING:
    from datamill_testing.mock_provider import MockProvider

# (key of a body, its problem as an error answer, its answer body and tokens)
Answers = tuple[
    Callable[[dict[str, Any]], str | None],
    Callable[[dict[str, Any]], web.Response | None],
    Callable[[dict[str, Any], str, str], tuple[bytes, int]],
]
_ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings")


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _error(status: int, message: str, *, param: str | None = None) -> web.Response:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    return _json({"error": error}, status)


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def object(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


@dataclass
class _Batch:
    id: str
    input_file_id: str
    endpoint: str
    metadata: dict[str, str] | None
    created_at: int
    fail: bool  # fails validation as a whole
    expire: bool  # expires with some lines not run
    status: str = "validating"
    retrieves: int = 0
    lines: list[dict[str, Any]] = field(default_factory=list)
    done: int = 0  # lines run
    outputs: list[bytes] = field(default_factory=list)
    errors: list[bytes] = field(default_factory=list)
    completed: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    error_data: list[dict[str, Any]] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    stamps: dict[str, int] = field(default_factory=dict)

    def object(self) -> dict[str, Any]:
        def stamp(name: str) -> int | None:
            return self.stamps.get(name)

        errors = None
        if self.error_data is not None:
            errors = {"object": "list", "data": self.error_data}
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": None,
            "errors": errors,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "in_progress_at": stamp("in_progress"),
            "expires_at": self.created_at + 24 * 3600,
            "finalizing_at": stamp("finalizing"),
            "completed_at": stamp("completed"),
            "failed_at": stamp("failed"),
            "expired_at": stamp("expired"),
            "cancelling_at": stamp("cancelling"),
            "cancelled_at": stamp("cancelled"),
            "request_counts": {
                "total": len(self.lines),
                "completed": self.completed,
                "failed": self.failed,
            },
            "usage": {
                "input_tokens": self.input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": self.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": self.input_tokens + self.output_tokens,
            },
            "metadata": self.metadata,
        }


class MockBatches:
    """The Files and Batches routes of a `MockProvider` (its config, counters, answers)."""

    def __init__(self, provider: MockProvider, answers: Mapping[str, Answers]) -> None:
        self._provider = provider
        self._answers = answers
        self._files: dict[str, _File] = {}
        self._batches: dict[str, _Batch] = {}
        self._order: list[str] = []  # batch ids, oldest first

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/files", self.upload)
        app.router.add_get("/v1/files/{file_id}", self.retrieve_file)
        app.router.add_get("/v1/files/{file_id}/content", self.file_content)
        app.router.add_post("/v1/batches", self.create)
        app.router.add_get("/v1/batches", self.list)
        app.router.add_get("/v1/batches/{batch_id}", self.retrieve)
        app.router.add_post("/v1/batches/{batch_id}/cancel", self.cancel)

    # -- files ---------------------------------------------------------------------------

    async def upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        purpose = form.get("purpose")
        if not isinstance(upload, web.FileField):
            return _error(400, "Missing required parameter: 'file'.", param="file")
        if not isinstance(purpose, str):
            return _error(400, "Missing required parameter: 'purpose'.", param="purpose")
        file = _File(
            id=f"file-{secrets.token_hex(12)}",
            filename=upload.filename,
            purpose=purpose,
            data=upload.file.read(),
            created_at=int(time.time()),
        )
        self._files[file.id] = file
        self._provider.counters.files_uploaded += 1
        return _json(file.object())

    async def retrieve_file(self, request: web.Request) -> web.Response:
        file = self._files.get(request.match_info["file_id"])
        if file is None:
            return _error(404, "No such File object.", param="id")
        return _json(file.object())

    async def file_content(self, request: web.Request) -> web.Response:
        file = self._files.get(request.match_info["file_id"])
        if file is None:
            return _error(404, "No such File object.", param="id")
        return web.Response(body=file.data, content_type="application/octet-stream")

    # -- batches -------------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.")
        file = self._files.get(str(body.get("input_file_id")))
        if file is None or file.purpose != "batch":
            return _error(
                400, "input_file_id must be a file uploaded for batch.", param="input_file_id"
            )
        if body.get("endpoint") not in _ENDPOINTS:
            return _error(400, "This endpoint is not supported by the mock.", param="endpoint")
        if body.get("completion_window") != "24h":
            return _error(400, "completion_window must be 24h.", param="completion_window")
        config = self._provider.config
        fail, expire = config.batch_fail_next > 0, False
        if fail:
            config.batch_fail_next -= 1
        elif config.batch_expire_next > 0:
            config.batch_expire_next -= 1
            expire = True
        batch = _Batch(
            id=f"batch_{secrets.token_hex(12)}",
            input_file_id=file.id,
            endpoint=str(body["endpoint"]),
            metadata=body.get("metadata"),
            created_at=int(time.time()),
            fail=fail,
            expire=expire,
        )
        self._batches[batch.id] = batch
        self._order.append(batch.id)
        self._provider.counters.upstream_batches += 1
        return _json(batch.object())

    async def list(self, request: web.Request) -> web.Response:
        limit = max(1, min(100, int(request.query.get("limit", "20"))))
        ids = self._order[::-1]
        after = request.query.get("after")
        if after in self._batches:
            ids = ids[ids.index(after) + 1 :]
        page = [self._batches[batch_id].object() for batch_id in ids[:limit]]
        return _json(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(ids) > limit,
            }
        )

    async def retrieve(self, request: web.Request) -> web.Response:
        batch = self._batches.get(request.match_info["batch_id"])
        if batch is None:
            return _error(404, "No such Batch object.", param="batch_id")
        self._advance(batch)
        return _json(batch.object())

    async def cancel(self, request: web.Request) -> web.Response:
        batch = self._batches.get(request.match_info["batch_id"])
        if batch is None:
            return _error(404, "No such Batch object.", param="batch_id")
        if batch.status not in {"validating", "in_progress", "finalizing", "cancelling"}:
            return _error(400, f"Cannot cancel a batch with status {batch.status}.")
        if batch.status != "cancelling":
            batch.status = "cancelling"
            batch.stamps["cancelling"] = int(time.time())
        return _json(batch.object())

    # -- one step of a batch -------------------------------------------------------------

    def _advance(self, batch: _Batch) -> None:
        now = int(time.time())
        if batch.status == "cancelling":
            self._end(batch, "cancelled", now)
            return
        if batch.status == "validating":
            if not self._validate(batch):
                batch.status = "failed"
                batch.stamps["failed"] = now
                return
            batch.status = "in_progress"
            batch.stamps["in_progress"] = now
        if batch.status != "in_progress":
            return
        batch.retrieves += 1
        polls = max(1, self._provider.config.batch_polls)
        total = len(batch.lines)
        share = total if batch.retrieves >= polls else math.ceil(total * batch.retrieves / polls)
        if batch.expire:
            share = min(share, math.floor(total * self._provider.config.batch_expire_processed))
        while batch.done < share:
            self._run_line(batch, batch.lines[batch.done])
            batch.done += 1
        if batch.retrieves < polls:
            return
        if batch.expire:
            for item in batch.lines[batch.done :]:
                error = {
                    "code": "batch_expired",
                    "message": "This request could not be executed before the completion "
                    "window expired.",
                }
                batch.errors.append(_line(item["custom_id"], None, error))
            self._end(batch, "expired", now)
        else:
            batch.stamps["finalizing"] = now
            self._end(batch, "completed", now)

    def _validate(self, batch: _Batch) -> bool:
        if batch.fail:
            batch.error_data = [
                {
                    "code": "mock_failure",
                    "message": "failed on purpose",
                    "param": None,
                    "line": None,
                }
            ]
            return False
        problems: list[dict[str, Any]] = []
        seen: set[str] = set()
        for number, raw in enumerate(self._files[batch.input_file_id].data.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                item = orjson.loads(raw)
            except orjson.JSONDecodeError:
                item = None
            problem = _line_problem(item, batch.endpoint, seen)
            if problem is not None:
                problems.append(
                    {"code": "invalid_request", "message": problem, "param": None, "line": number}
                )
                continue
            batch.lines.append(item)
        if problems:
            batch.error_data = problems[:100]
            return False
        return True

    def _run_line(self, batch: _Batch, item: dict[str, Any]) -> None:
        provider = self._provider
        counters, config = provider.counters, provider.config
        counters.batch_lines += 1
        key_of, problem_of, answer = self._answers[batch.endpoint]
        body = item["body"]
        key = key_of(body)
        if key is not None:
            counters.count_call(key)
        answer_id = secrets.token_hex(12)
        custom_id = item["custom_id"]
        if config.batch_fail_lines:
            config.batch_fail_lines -= 1
            status = config.batch_line_error_status
            error = {
                "message": "The server had an error (batch_fail_lines).",
                "type": "server_error",
            }
            response = {
                "status_code": status,
                "request_id": f"req_{answer_id}",
                "body": {"error": error},
            }
            batch.errors.append(_line(custom_id, response, None))
            batch.failed += 1
            return
        problem = problem_of(body) if key is not None else None
        if problem is not None or key is None:
            status = problem.status if problem is not None else 400
            raw = problem.body if problem is not None else None
            error_body = (
                orjson.loads(raw)
                if isinstance(raw, bytes)
                else {"error": {"message": "Invalid request body."}}
            )
            response = {"status_code": status, "request_id": f"req_{answer_id}", "body": error_body}
            batch.errors.append(_line(custom_id, response, None))
            batch.failed += 1
            return
        payload, _ = answer(body, key, answer_id)
        counters.count_ok(key)
        parsed = orjson.loads(payload)
        usage = parsed.get("usage") or {}
        batch.input_tokens += int(usage.get("prompt_tokens") or 0)
        batch.output_tokens += int(usage.get("completion_tokens") or 0)
        response = {"status_code": 200, "request_id": f"req_{answer_id}", "body": parsed}
        batch.outputs.append(_line(custom_id, response, None))
        batch.completed += 1

    def _end(self, batch: _Batch, status: str, now: int) -> None:
        for kind, lines in (("output", batch.outputs), ("errors", batch.errors)):
            if not lines:
                continue
            file = _File(
                id=f"file-{secrets.token_hex(12)}",
                filename=f"{batch.id}_{kind}.jsonl",
                purpose="batch_output",
                data=b"".join(lines),
                created_at=now,
            )
            self._files[file.id] = file
            if kind == "output":
                batch.output_file_id = file.id
            else:
                batch.error_file_id = file.id
        batch.status = status
        batch.stamps[status] = now


def _line(custom_id: str, response: dict[str, Any] | None, error: dict[str, Any] | None) -> bytes:
    line = {
        "id": f"batch_req_{secrets.token_hex(12)}",
        "custom_id": custom_id,
        "response": response,
        "error": error,
    }
    return orjson.dumps(line) + b"\n"


def _line_problem(item: Any, endpoint: str, seen: set[str]) -> str | None:
    """Why OpenAI would refuse this input line, if it would."""
    if not isinstance(item, dict):
        return "The line is not a JSON object."
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return "Missing custom_id."
    if custom_id in seen:
        return f"Duplicate custom_id {custom_id!r}."
    seen.add(custom_id)
    if item.get("method") != "POST":
        return "method must be POST."
    if item.get("url") != endpoint:
        return f"url must be {endpoint}."
    if not isinstance(item.get("body"), dict):
        return "body must be an object."
    return None
