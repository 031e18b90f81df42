"""Validating a batch's input file and staging one request row per line.

Checks follow OpenAI's Batch API: each line is a JSON object with ``custom_id`` (unique),
``method`` POST, ``url`` equal to the batch endpoint, and a ``body`` object. datamill also
checks what it needs to run the line: a ``model`` some deployment serves, and the body's
required field for the endpoint, and, for a batch asking for ``native`` mode, a deployment
with a native batch API. When it passes, the batch's mode is resolved (``auto`` becomes
online or native) and recorded with its start. Any error makes the batch ``failed`` with
``errors.data`` naming the line, code and message; nothing is executed and no staged row is
left behind. Validation restarts from scratch if its worker dies.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from datamill.engine.context import EngineContext
from datamill.engine.lines import Line, iter_lines
from datamill.engine.native.support import native_route, resolve_mode
from datamill.protocol.batches import BatchMode, BatchStatus
from datamill.protocol.limits import nests_too_deeply, too_deep_message
from datamill.providers.base import Endpoint
from datamill.scheduler.router import DeploymentHandle, RoutePlan, Router
from datamill.storage import batches as batch_repo
from datamill.storage import files as file_repo
from datamill.storage import requests as request_repo
from datamill.storage.records import BatchRecord

log = logging.getLogger("datamill.engine")

MAX_REPORTED_ERRORS = 100
_STAGE_CHUNK = 2000
_YIELD_EVERY = 100
_REQUIRED_BODY_FIELD = {
    Endpoint.chat_completions: "messages",
    Endpoint.embeddings: "input",
    Endpoint.responses: "input",
}
# Endpoints native batches can carry (every provider's batch API takes chat completions).
_NATIVE_ENDPOINTS = frozenset({Endpoint.chat_completions, Endpoint.embeddings})


@dataclass(slots=True)
class ValidationReport:
    """The errors found in a batch file (the first `MAX_REPORTED_ERRORS` listed) and how
    many requests it has."""

    errors: list[dict[str, Any]] = field(default_factory=list)
    error_lines: int = 0
    requests: int = 0  # non-blank lines read

    def add(self, line: int | None, code: str, message: str, param: str | None = None) -> None:
        self.error_lines += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"code": code, "message": message, "param": param, "line": line})

    def finish(self) -> list[dict[str, Any]]:
        hidden = self.error_lines - len(self.errors)
        if hidden > 0:
            self.errors.append(
                {
                    "code": "too_many_errors",
                    "message": f"{hidden} more errors are not listed; fix the ones above first",
                    "param": None,
                    "line": None,
                }
            )
        return self.errors


async def validate_batch(context: EngineContext, batch: BatchRecord, *, worker_id: str) -> None:
    """Validate and stage a ``validating`` batch claimed by nobody; no-op otherwise."""
    db = context.database
    if not await batch_repo.claim_batch(
        db, batch.id, worker_id=worker_id, status=BatchStatus.validating
    ):
        return
    await request_repo.clear_requests(db, batch.id)
    report = ValidationReport()
    staged = await _stage(context, batch, report)
    total, model = staged.total, staged.model
    if not report.errors and total:
        # All of them, not the first 100: the report counts the ones it does not list.
        for duplicate in await request_repo.duplicate_custom_ids(db, batch.id, limit=total):
            report_duplicate(report, duplicate.custom_id, duplicate.first_line, duplicate.line)
    now = context.clock.now()
    if report.errors:
        await request_repo.clear_requests(db, batch.id)
        if not await batch_repo.fail_batch(db, batch.id, errors=report.finish(), now=now):
            await batch_repo.start_batch(db, batch.id, total=0, model=None, now=now)
        context.events.batch_changed(batch.id)
        log.info("batch %s failed validation: %d bad lines", batch.id, report.error_lines)
        return
    mode = resolve_mode(_requested_mode(batch), staged.deployments)
    await batch_repo.start_batch(db, batch.id, total=total, model=model, now=now, mode=mode)
    context.events.batch_changed(batch.id)
    log.info("batch %s validated: %d requests, %s", batch.id, total, mode.value)


def report_duplicate(report: ValidationReport, custom_id: str, first_line: int, line: int) -> None:
    """A custom_id used again: reported once, on the last line that uses it."""
    report.add(
        line,
        "duplicate_custom_id",
        f"custom_id {custom_id!r} is already used on line {first_line}; "
        "each custom_id must be unique in the file",
        "custom_id",
    )


def _requested_mode(batch: BatchRecord) -> BatchMode:
    return BatchMode((batch.options or {}).get("mode", BatchMode.online))


async def give_up_validation(
    context: EngineContext, batch: BatchRecord, error: Exception, *, attempts: int
) -> None:
    """Fail a batch whose validation keeps failing inside datamill (a bug, not bad input):
    a clear error on the batch instead of a batch left validating forever."""
    db = context.database
    await request_repo.clear_requests(db, batch.id)
    message = (
        f"datamill could not validate the input file ({attempts} attempts failed: {error!r}); "
        "this is a bug in datamill, please report it with the server log"
    )
    errors = [{"code": "internal_error", "message": message, "param": None, "line": None}]
    if await batch_repo.fail_batch(db, batch.id, errors=errors, now=context.clock.now()):
        context.events.batch_changed(batch.id)
        log.error("batch %s failed: %s", batch.id, message)


@dataclass(slots=True)
class _Staged:
    total: int = 0  # requests in the file
    model: str | None = None  # the one model every request asks for, if there is one
    deployments: list[DeploymentHandle] = field(default_factory=list)  # the ones they need


async def _stage(context: EngineContext, batch: BatchRecord, report: ValidationReport) -> _Staged:
    """Check every line, staging the valid ones."""
    db = context.database
    file = await file_repo.get_file(db, batch.input_file_id, project_id=batch.project_id)
    if file is None:
        report.add(
            None,
            "file_not_found",
            f"input file {batch.input_file_id} was deleted before the batch was validated",
            "input_file_id",
        )
        return _Staged()
    endpoint = Endpoint(batch.endpoint)
    stager = _Stager(context, batch.id)
    native = _requested_mode(batch) is BatchMode.native
    try:
        return await _check_and_stage(context, file.id, endpoint, report, stager, native=native)
    finally:
        await stager.close()


@dataclass(frozen=True, slots=True)
class CheckedLine:
    """A line that passed its own checks (a custom_id used twice is found afterwards)."""

    number: int
    custom_id: str
    model: str
    body: bytes
    # The deployment that runs it: natively, the first of its plan with a batch API.
    handle: DeploymentHandle


async def check_lines(
    context: EngineContext,
    chunks: AsyncIterable[bytes],
    endpoint: Endpoint,
    report: ValidationReport,
    *,
    native: bool,
) -> AsyncIterator[CheckedLine]:
    """Check every line of a batch file: yield the valid ones, report the others (and a file
    with too many requests or none). Validation stages what this yields; `POST
    /api/files/validate` only counts it."""
    settings = context.settings
    async for line in iter_lines(chunks, max_line_bytes=settings.max_line_bytes):
        if not line.oversized and not line.data.strip():
            continue
        report.requests += 1
        if report.requests % _YIELD_EVERY == 0:
            await asyncio.sleep(0)  # let the staging task (and the rest of the loop) run
        if report.requests > settings.max_file_lines:
            report.requests -= 1
            report.add(
                line.number,
                "too_many_requests",
                f"the file has more than {settings.max_file_lines} requests "
                "(DATAMILL_MAX_FILE_LINES); split it into several batches",
            )
            break
        checked = check_line(line, endpoint, context.router, settings.max_line_bytes, report)
        if checked is None:
            continue
        custom_id, model, body, plan = checked
        route = native_route(plan) if endpoint in _NATIVE_ENDPOINTS else None
        handle = (route or plan.routes[0]).handle
        if native and route is None:
            report.add(
                line.number,
                "native_batch_unsupported",
                f"model {model!r} is served by deployment {handle.name!r} (provider "
                f"{handle.config.provider!r}), which has no native batch API for "
                f"{endpoint.value}; use mode online or auto, or route this model to a "
                "deployment that has one",
                "body.model",
            )
            continue
        yield CheckedLine(line.number, custom_id, model, body, handle)
    if report.requests == 0:
        report.add(
            None, "empty_file", "the input file has no requests; each line must be one request"
        )


async def _check_and_stage(
    context: EngineContext,
    file_id: str,
    endpoint: Endpoint,
    report: ValidationReport,
    stager: _Stager,
    *,
    native: bool,
) -> _Staged:
    rows: list[tuple[int, str, bytes]] = []
    models: set[str] = set()
    first_model: str | None = None
    # The deployments the lines need, by name: they decide the batch's mode.
    deployments: dict[str, DeploymentHandle] = {}
    chunks = context.blobs.read(file_id)
    async for checked in check_lines(context, chunks, endpoint, report, native=native):
        if endpoint in _NATIVE_ENDPOINTS:  # the others always run online
            deployments.setdefault(checked.handle.name, checked.handle)
        if first_model is None:
            first_model = checked.model
        if len(models) < 2:
            models.add(checked.model)
        if not report.errors:
            rows.append((checked.number, checked.custom_id, checked.body))
            if len(rows) >= _STAGE_CHUNK:
                await stager.stage(rows)
                rows = []
    if rows and not report.errors:
        await stager.stage(rows)
    common = first_model if len(models) == 1 else None
    return _Staged(report.requests, common, list(deployments.values()))


class _Stager:
    """Stages chunks of rows in the background, so the store inserts while the next lines are
    parsed; on PostgreSQL two chunks go in at once, on two connections."""

    def __init__(self, context: EngineContext, batch_id: str) -> None:
        self._context = context
        self._batch_id = batch_id
        self._in_flight = 2 if context.database.dialect == "postgresql" else 1
        self._pending: deque[asyncio.Task[None]] = deque()

    async def stage(self, rows: list[tuple[int, str, bytes]]) -> None:
        while len(self._pending) >= self._in_flight:
            await self._pending.popleft()
        self._pending.append(
            asyncio.create_task(
                request_repo.stage_requests(self._context.database, self._batch_id, rows)
            )
        )

    async def close(self) -> None:
        """Wait for every chunk; a failure fails the validation (it is retried)."""
        pending, self._pending = self._pending, deque()
        results = await asyncio.gather(*pending, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result


def check_line(
    line: Line, endpoint: Endpoint, router: Router, max_line_bytes: int, report: ValidationReport
) -> tuple[str, str, bytes, RoutePlan] | None:
    """Return (custom_id, model, body bytes, route plan) for a valid line, else report why
    not."""
    n = line.number
    if line.oversized:
        report.add(
            n,
            "line_too_large",
            f"the line is longer than {max_line_bytes} bytes (DATAMILL_MAX_LINE_BYTES)",
        )
        return None
    try:
        item = orjson.loads(line.data)
    except orjson.JSONDecodeError as exc:
        try:
            line.data.decode("utf-8")
        except UnicodeDecodeError as bad:
            report.add(n, "invalid_utf8", f"the line is not valid UTF-8 (byte {bad.start + 1})")
            return None
        report.add(n, "invalid_json_line", f"the line is not valid JSON: {exc.msg}")
        return None
    if not isinstance(item, dict):
        report.add(n, "invalid_json_line", "the line must be a JSON object")
        return None
    if nests_too_deeply(line.data, item):
        report.add(n, "invalid_json_line", too_deep_message("the line"))
        return None
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        problem = "is missing" if custom_id is None else "must be a non-empty string"
        report.add(n, "missing_required_parameter", f"custom_id {problem}", "custom_id")
        return None
    if "\x00" in custom_id:  # PostgreSQL's text cannot hold it
        report.add(n, "invalid_value", "custom_id holds a NUL character", "custom_id")
        return None
    if len(custom_id) > 512:
        report.add(n, "invalid_value", "custom_id is longer than 512 characters", "custom_id")
        return None
    method = item.get("method")
    if method != "POST":
        report.add(n, "invalid_method", f'method must be "POST", got {method!r}', "method")
        return None
    url = item.get("url")
    if url != endpoint.value:
        report.add(
            n,
            "invalid_url",
            f"url {url!r} does not match the batch endpoint {endpoint.value!r}",
            "url",
        )
        return None
    body = item.get("body")
    if not isinstance(body, dict):
        problem = "is missing" if body is None else "must be a JSON object"
        report.add(n, "missing_required_parameter", f"body {problem}", "body")
        return None
    model = body.get("model")
    if not isinstance(model, str) or not model:
        problem = "is missing" if model is None else "must be a non-empty string"
        report.add(n, "missing_required_parameter", f"body.model {problem}", "body.model")
        return None
    required = _REQUIRED_BODY_FIELD[endpoint]
    if required not in body:
        report.add(
            n,
            "missing_required_parameter",
            f"body.{required} is missing (required by {endpoint.value})",
            f"body.{required}",
        )
        return None
    plan = router.plan(model, endpoint)
    if plan is None:
        report.add(
            n,
            "model_not_found",
            f"no deployment serves model {model!r} on {endpoint.value}; "
            "add one to datamill.toml or fix the model name",
            "body.model",
        )
        return None
    return custom_id, model, orjson.dumps(body), plan
