"""Anthropic's Message Batches API as a `NativeBatchAPI`.

``submit`` creates a batch of translated requests (``POST /v1/messages/batches``), ``poll``
reads its ``processing_status`` and ``request_counts``, ``results`` streams the JSONL at its
``results_url`` line by line (never the whole file in memory), ``cancel`` asks it to stop.

One bad request must not sink an upstream batch: `AnthropicBatches.translate` is the
per-request step. The engine calls it on each request before grouping them and records a
refusal (a `bad_request` naming the field) as that request's error; ``submit`` translates
again and, should a request still be refused, raises before anything is sent, naming the
request's key, so no upstream batch ever holds a request Anthropic cannot express.

Results: ``succeeded`` is a `NativeResult` with the OpenAI ``chat.completion`` (as
`complete` would answer), ``errored`` one with the `ProviderError` of the upstream error
(its category decides retry or final), ``canceled`` and ``expired`` none at all: the
upstream never ran them, and the engine resubmits them while the completion window allows.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from datamill.clock import Clock
from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.anthropic.errors import error_from_answer, error_from_body
from datamill.providers.anthropic.options import AnthropicOptions
from datamill.providers.anthropic.request import messages_request
from datamill.providers.anthropic.response import completion_response
from datamill.providers.base import (
    Endpoint,
    NativeBatchState,
    NativeBatchStatus,
    NativeRequest,
    NativeResult,
)
from datamill.providers.http import HttpPool, line_too_long
from datamill.providers.http1 import Target

_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,256}")
_RUNNING = {"in_progress", "canceling"}


class AnthropicBatches:
    """Message Batches of one deployment. Every method may be called again (after a crash,
    say): polling, reading results and cancelling change nothing upstream twice."""

    max_requests = 100_000
    max_bytes = 256 * 1024 * 1024

    def __init__(
        self,
        http: HttpPool,
        *,
        base_url: str,
        headers: Mapping[str, str],
        options: AnthropicOptions,
        clock: Clock,
    ) -> None:
        self._http = http
        self._root = f"{base_url}/v1/messages/batches"
        self._headers = dict(headers)
        self._options = options
        self._clock = clock
        self._create = http.prepare(self._root, self._headers)

    def translate(self, request: NativeRequest) -> dict[str, Any]:
        """The Anthropic ``params`` of one request; `ProviderError` (bad_request, naming the
        field) when it cannot be expressed, as `complete` would refuse it."""
        if request.endpoint is not Endpoint.chat_completions:
            raise ProviderError(
                ErrorCategory.bad_request,
                f"Anthropic's batches hold chat completions only, not {request.endpoint}",
                param="endpoint",
            )
        return messages_request(request.body, self._options)

    async def submit(self, requests: list[NativeRequest], *, endpoint: Endpoint) -> str:
        if not requests:
            raise ProviderError(ErrorCategory.bad_request, "an upstream batch needs a request")
        if len(requests) > self.max_requests:
            raise ProviderError(
                ErrorCategory.bad_request,
                f"{len(requests)} requests exceed Anthropic's {self.max_requests} per batch",
            )
        lines = []
        for request in requests:
            try:
                params = self.translate(request)
            except ProviderError as exc:
                raise ProviderError(
                    exc.category,
                    f"request {request.key}: {exc.message}",
                    body=exc.body,
                    param=exc.param,
                ) from None
            lines.append({"custom_id": request.key, "params": params})
        data = orjson.dumps({"requests": lines})
        if len(data) > self.max_bytes:
            raise ProviderError(
                ErrorCategory.bad_request,
                f"the batch is {len(data)} bytes once translated, over Anthropic's "
                f"{self.max_bytes}; submit fewer requests at once",
            )
        batch = await self._call(self._create, data)
        batch_id = batch.get("id")
        if not isinstance(batch_id, str) or not _BATCH_ID.fullmatch(batch_id):
            raise _malformed(batch)
        return batch_id

    async def poll(self, batch_id: str) -> NativeBatchStatus:
        batch = await self._retrieve(batch_id)
        status = batch.get("processing_status")
        counts = batch.get("request_counts")
        if not isinstance(counts, dict) or status not in _RUNNING | {"ended"}:
            raise _malformed(batch)
        numbers = {key: int(value) for key, value in counts.items() if isinstance(value, int)}
        if status in _RUNNING:
            state = NativeBatchState.running
        elif batch.get("cancel_initiated_at"):
            state = NativeBatchState.cancelled
        else:
            state = NativeBatchState.ended
        return NativeBatchStatus(
            state=state,
            total=sum(numbers.values()),
            finished=numbers.get("succeeded", 0) + numbers.get("errored", 0),
        )

    def results(self, batch_id: str) -> AsyncIterator[NativeResult]:
        return self._results(batch_id)

    async def cancel(self, batch_id: str) -> None:
        target = self._http.prepare(f"{self._batch_url(batch_id)}/cancel", self._headers)
        await self._call(target, b"")

    # -- internals ------------------------------------------------------------------------

    def _batch_url(self, batch_id: str) -> str:
        if not _BATCH_ID.fullmatch(batch_id):  # it goes into a URL path
            raise ProviderError(ErrorCategory.not_found, f"{batch_id!r} is not a batch id")
        return f"{self._root}/{batch_id}"

    async def _retrieve(self, batch_id: str) -> dict[str, Any]:
        target = self._http.prepare(self._batch_url(batch_id), self._headers, method="GET")
        return await self._call(target, b"")

    async def _call(self, target: Target, data: bytes) -> dict[str, Any]:
        answer = await self._http.send(target, data=data)
        if answer.status >= 300:
            raise error_from_answer(answer, now=self._clock.now())
        try:
            batch = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            batch = None
        if not isinstance(batch, dict):
            raise _malformed(answer.body[:500].decode("utf-8", "replace"))
        return batch

    def _results_target(self, batch_id: str, results_url: Any) -> Target:
        """The batch's ``results_url``, if it is on the API's origin (the key goes with the
        request); else the documented results path."""
        url = f"{self._batch_url(batch_id)}/results"
        if isinstance(results_url, str) and _origin(results_url) == _origin(self._root):
            url = results_url
        # The official SDK asks for the file this way.
        headers = {**self._headers, "Accept": "application/binary"}
        return self._http.prepare(url, headers, method="GET")

    async def _results(self, batch_id: str) -> AsyncIterator[NativeResult]:
        batch = await self._retrieve(batch_id)
        if not batch.get("results_url"):
            raise ProviderError(
                ErrorCategory.bad_request,
                f"batch {batch_id} has no results yet (it is "
                f"{batch.get('processing_status')}); poll until it ends",
            )
        target = self._results_target(batch_id, batch["results_url"])
        now = self._clock.now
        stream = await self._http.open_stream(
            target, data=b"", error=lambda answer: error_from_answer(answer, now=now())
        )
        pending = bytearray()
        try:
            async for chunk in stream:
                start = 0
                while (end := chunk.find(b"\n", start)) >= 0:
                    pending += chunk[start:end]
                    result = self._result(bytes(pending))
                    pending.clear()
                    start = end + 1
                    if result is not None:
                        yield result
                pending += chunk[start:]
                if len(pending) > stream.max_body:
                    raise line_too_long(stream.max_body)
            result = self._result(bytes(pending))
            if result is not None:
                yield result
        finally:
            stream.close()

    def _result(self, line: bytes) -> NativeResult | None:
        """One line of the results file; None for a blank line and for requests the upstream
        never ran (canceled, expired) or whose outcome datamill does not know."""
        if not line.strip():
            return None
        try:
            item = orjson.loads(line)
            key, result = item["custom_id"], item["result"]
            kind = result["type"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise _malformed(line[:500].decode("utf-8", "replace")) from None
        if kind == "succeeded":
            message = result.get("message")
            message_id = message.get("id") if isinstance(message, dict) else None
            response = completion_response(
                message,
                created=int(self._clock.now()),
                request_id=message_id if isinstance(message_id, str) else key,
            )
            return NativeResult(key=key, response=response)
        if kind == "errored":
            return NativeResult(key=key, error=error_from_body(result.get("error")))
        return None


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


def _malformed(what: Any) -> ProviderError:
    return ProviderError(
        ErrorCategory.server_error,
        f"Anthropic's batch API answered something unexpected: {str(what)[:500]}",
    )
