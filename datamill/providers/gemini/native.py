"""Gemini batch mode as a `NativeBatchAPI`, with inlined requests.

Reference: Gemini API, "Batch API" (``models.batchGenerateContent``, ``batches.get``,
``batches.cancel``). A batch is created with
``POST {root}/models/{model}:batchGenerateContent`` and
``{"batch": {"displayName", "inputConfig": {"requests": {"requests": [{"request": <a
generateContent request>, "metadata": {"key": <datamill's key>}}]}}}}``; the answer is a
long-running operation whose ``name`` (``batches/<id>``) is the upstream id. ``GET
{root}/batches/<id>`` returns the same operation: ``metadata.state`` (``BATCH_STATE_*``; the
SDKs' ``JOB_STATE_*`` names are accepted too), ``metadata.batchStats`` (int64 counts, as
strings) and, once done, ``metadata.output.inlinedResponses.inlinedResponses``: one item per
processed request with its ``metadata`` echoed and a ``response`` or an ``error``
(``google.rpc.Status``). Requests of an expired batch that never ran have no item: they get no
`NativeResult`, so the engine resubmits them.

Choices:

- A Gemini batch serves one model: `submit` refuses requests for several models.
- Only chat completions: Gemini's embedding batches are another API (not offered here).
- Limits: Gemini documents inline batch requests up to 20 MB in total. ``max_bytes`` counts
  the OpenAI bodies, so it keeps 10% under that for the translation and the envelope;
  ``max_requests`` is not documented for inline batches and is set to what 18 MB of small
  requests holds.
- Per-request rejection: a request with a field Gemini cannot express would make the upstream
  refuse the whole batch (one 400 for the create call). `translate` is the per-request step:
  the engine is to call it on each request before it groups them, record a `ProviderError`
  from it as that request's final result, and submit only the requests that translated.
  `submit` translates again and refuses the whole batch (``bad_request``) only if a request
  that was never checked slips through.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from datamill.clock import Clock
from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.base import (
    Endpoint,
    NativeBatchState,
    NativeBatchStatus,
    NativeRequest,
    NativeResult,
)
from datamill.providers.gemini.client import GeminiClient, model_path
from datamill.providers.gemini.errors import error_from_status, refused
from datamill.providers.gemini.options import GeminiOptions
from datamill.providers.gemini.request import translate_chat
from datamill.providers.gemini.response import provider_response

_BATCH_NAME = re.compile(r"^batches/[A-Za-z0-9_-]+$")
S = NativeBatchState
_STATES = {
    "SUCCEEDED": S.ended,
    "PARTIALLY_SUCCEEDED": S.ended,
    "EXPIRED": S.ended,  # ended with the unprocessed requests left without results
    "FAILED": S.failed,
    "CANCELLED": S.cancelled,
}


class GeminiBatches:
    """Gemini batch mode for one deployment. Every method may be called again after a crash:
    all state lives upstream."""

    max_bytes = 18_000_000
    max_requests = 20_000

    def __init__(self, client: GeminiClient, options: GeminiOptions, clock: Clock) -> None:
        self._client = client
        self._options = options
        self._clock = clock

    def translate(self, request: NativeRequest) -> dict[str, Any]:
        """The inlined request of one `NativeRequest`; a `ProviderError` (``bad_request``,
        naming the field) when Gemini cannot express it."""
        if request.endpoint is not Endpoint.chat_completions:
            raise refused("endpoint", "Gemini batches here carry chat completions only")
        if request.body.get("stream") not in (None, False):
            raise refused("stream", "a batched request cannot stream")
        return {
            "request": translate_chat(request.body, self._options),
            "metadata": {"key": request.key},
        }

    async def submit(self, requests: list[NativeRequest], *, endpoint: Endpoint) -> str:
        if not requests:
            raise ProviderError(ErrorCategory.bad_request, "a batch needs at least one request")
        models = {request.body.get("model") for request in requests}
        if len(models) != 1:
            raise refused("model", "a Gemini batch serves one model; split the requests by model")
        [model] = models
        if not isinstance(model, str) or not model:
            raise refused("model", "is missing")
        inlined = []
        for request in requests:
            try:
                inlined.append(self.translate(request))
            except ProviderError as exc:
                exc.message = f"request {request.key}: {exc.message}"
                raise
        body = {
            "batch": {
                "displayName": self._options.batch_display_name,
                "inputConfig": {"requests": {"requests": inlined}},
            }
        }
        answer = await self._client.call(f"{model_path(model)}:batchGenerateContent", body)
        name = answer.get("name") if isinstance(answer, dict) else None
        if not isinstance(name, str) or not _BATCH_NAME.match(name):
            raise ProviderError(
                ErrorCategory.server_error, f"Gemini created a batch without a name: {answer!r}"
            )
        return name

    async def poll(self, batch_id: str) -> NativeBatchStatus:
        operation = await self._get(batch_id)
        batch = _batch(operation)
        state = _state(batch.get("state"))
        stats = batch.get("batchStats") or {}
        message = None
        if state is S.failed:
            error = operation.get("error") or {}
            message = str(error.get("message") or "Gemini failed the batch")
        return NativeBatchStatus(
            state=state,
            total=_count(stats, "requestCount"),
            finished=_count(stats, "successfulRequestCount") + _count(stats, "failedRequestCount"),
            message=message,
        )

    async def results(self, batch_id: str) -> AsyncIterator[NativeResult]:
        operation = await self._get(batch_id)
        batch = _batch(operation)
        model = str(batch.get("model") or "").removeprefix("models/")
        created = int(self._clock.now())
        for item in _inlined_responses(operation, batch):
            key = (item.get("metadata") or {}).get("key")
            if not isinstance(key, str):
                continue  # not one of ours: it cannot be attributed
            if item.get("response") is not None:
                try:
                    answer = provider_response(item["response"], model=model, created=created)
                except ProviderError as exc:  # a blocked prompt, a malformed answer
                    yield NativeResult(key=key, error=exc)
                else:
                    yield NativeResult(key=key, response=answer)
            elif item.get("error") is not None:
                yield NativeResult(key=key, error=error_from_status(item["error"]))

    async def cancel(self, batch_id: str) -> None:
        await self._client.call(f"{_checked(batch_id)}:cancel", {})

    async def _get(self, batch_id: str) -> dict[str, Any]:
        operation = await self._client.call(_checked(batch_id), method="GET")
        if not isinstance(operation, dict):
            raise ProviderError(ErrorCategory.server_error, "Gemini answered a non-object batch")
        return operation


def _checked(batch_id: str) -> str:
    if not _BATCH_NAME.match(batch_id):
        raise ProviderError(ErrorCategory.not_found, f"{batch_id!r} is not a Gemini batch name")
    return batch_id


def _batch(operation: dict[str, Any]) -> dict[str, Any]:
    """The batch resource: the operation's ``metadata`` (or the object itself)."""
    metadata = operation.get("metadata")
    return metadata if isinstance(metadata, dict) else operation


def _state(value: Any) -> NativeBatchState:
    name = str(value or "").removeprefix("BATCH_STATE_").removeprefix("JOB_STATE_")
    return _STATES.get(name, S.running)  # PENDING, RUNNING, CANCELLING, ...


def _count(stats: dict[str, Any], name: str) -> int:
    try:
        return int(stats.get(name) or 0)
    except (TypeError, ValueError):
        return 0


def _inlined_responses(operation: dict[str, Any], batch: dict[str, Any]) -> list[dict[str, Any]]:
    for output in (batch.get("output"), operation.get("response")):
        if isinstance(output, dict):
            if output.get("responsesFile"):
                raise ProviderError(
                    ErrorCategory.server_error,
                    "Gemini put the results of an inlined batch in a file",
                    body=operation,
                )
            inlined = (output.get("inlinedResponses") or {}).get("inlinedResponses")
            if isinstance(inlined, list):
                return [item for item in inlined if isinstance(item, dict)]
    return []
