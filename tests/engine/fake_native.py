"""An in-memory provider with a native batch API, registered as provider type ``fakebatch``:
for what the mock provider cannot show (a provider that cannot express some fields, an API
without a lookup, a submit cut off by a crash). Its upstream state is per deployment name in
`UPSTREAMS`, so a test inspects what went upstream."""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.base import (
    Capabilities,
    Endpoint,
    NativeBatchState,
    NativeBatchStatus,
    NativeRequest,
    NativeResult,
    ProviderCall,
    ProviderContext,
    ProviderResponse,
    Usage,
)
from datamill.providers.fields import (
    CHAT_FIELDS,
    EMBEDDING_FIELDS,
    MESSAGE_FEATURES,
    NO,
    YES,
    FieldTable,
)
from datamill.settings import DeploymentConfig


@dataclass
class Upstream:
    """What one deployment's batch API holds and saw."""

    batches: dict[str, list[NativeRequest]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    submits: int = 0  # submit calls, refused ones included
    polls: int = 0
    cancels: int = 0
    stuck: bool = False  # batches never end, whatever the cancels
    vanish: int = 0  # the next N batches polled are gone (404)
    runs: Counter[str] = field(default_factory=Counter)  # per key: lines run upstream
    online_calls: int = 0


UPSTREAMS: dict[str, Upstream] = {}


def answer(request: NativeRequest) -> ProviderResponse:
    body = {
        "id": f"chatcmpl-{secrets.token_hex(4)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "fake"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    return ProviderResponse(
        body=orjson.dumps(body),
        usage=Usage(input_tokens=3, output_tokens=1),
        request_id=f"req_{secrets.token_hex(4)}",
    )


class FakeBatches:
    """A batch API without a lookup: every batch ends at its first poll."""

    def __init__(self, upstream: Upstream, *, max_requests: int) -> None:
        self.upstream = upstream
        self.max_requests = max_requests
        self.max_bytes = 1_000_000

    async def submit(self, requests: list[NativeRequest], *, endpoint: Endpoint) -> str:
        return self._create(requests, None)

    def _create(self, requests: list[NativeRequest], label: str | None) -> str:
        self.upstream.submits += 1
        for request in requests:
            # A translation that fails, as an adapter refuses what it cannot express.
            if "tools" in request.body:
                raise ProviderError(
                    ErrorCategory.bad_request,
                    "`tools` cannot be expressed by the fakebatch provider",
                    param="tools",
                )
        batch_id = f"fb_{secrets.token_hex(6)}"
        self.upstream.batches[batch_id] = list(requests)
        if label is not None:
            self.upstream.labels[label] = batch_id
        return batch_id

    async def poll(self, batch_id: str) -> NativeBatchStatus:
        upstream = self.upstream
        upstream.polls += 1
        if upstream.vanish and batch_id in upstream.batches:
            upstream.vanish -= 1
            del upstream.batches[batch_id]
        if batch_id not in upstream.batches:
            raise ProviderError(ErrorCategory.not_found, f"no batch {batch_id}", status_code=404)
        if upstream.stuck:
            return NativeBatchStatus(NativeBatchState.running)
        requests = upstream.batches[batch_id]
        return NativeBatchStatus(
            NativeBatchState.ended, total=len(requests), finished=len(requests)
        )

    async def _results(self, batch_id: str) -> AsyncIterator[NativeResult]:
        for request in self.upstream.batches[batch_id]:
            self.upstream.runs[request.key] += 1
            yield NativeResult(request.key, response=answer(request))

    def results(self, batch_id: str) -> AsyncIterator[NativeResult]:
        return self._results(batch_id)

    async def cancel(self, batch_id: str) -> None:
        self.upstream.cancels += 1


class FakeLookupBatches(FakeBatches):
    """The same API, labelling its batches and finding them again."""

    async def submit(  # type: ignore[override]
        self, requests: list[NativeRequest], *, endpoint: Endpoint, label: str | None = None
    ) -> str:
        return self._create(requests, label)

    async def find(self, label: str) -> str | None:
        return self.upstream.labels.get(label)


class FakeBatchProvider:
    capabilities = Capabilities(chat=True, embeddings=False, native_batch=True)

    def __init__(self, deployment: DeploymentConfig) -> None:
        # It cannot express logprobs: the engine refuses such a request before any submit.
        self.chat_fields: FieldTable = {
            **dict.fromkeys(CHAT_FIELDS + MESSAGE_FEATURES, YES),
            "logprobs": NO,
        }
        self.embedding_fields: FieldTable = dict.fromkeys(EMBEDDING_FIELDS, YES)
        options: dict[str, Any] = deployment.options
        self.upstream = UPSTREAMS.setdefault(deployment.name, Upstream())
        self.upstream.stuck = bool(options.get("stuck", False))
        self.upstream.vanish = int(options.get("vanish", 0))
        kind = FakeLookupBatches if options.get("lookup", True) else FakeBatches
        self.native_batches = kind(self.upstream, max_requests=options.get("max_requests", 100))

    async def complete(self, call: ProviderCall) -> ProviderResponse:
        self.upstream.online_calls += 1
        return answer(NativeRequest("online", call.endpoint, call.body))

    async def embed(self, call: ProviderCall) -> ProviderResponse:
        raise ProviderError(ErrorCategory.bad_request, "no embeddings", status_code=400)

    async def aclose(self) -> None:
        return None


def create_fake_batch_provider(
    deployment: DeploymentConfig, context: ProviderContext
) -> FakeBatchProvider:
    return FakeBatchProvider(deployment)
