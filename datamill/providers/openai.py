"""The `openai` provider: any OpenAI-compatible API (OpenAI, Groq, Cerebras, OpenRouter,
Together, vLLM, Ollama, llama.cpp). Request bodies go through unchanged (only ``model`` is
rewritten when the deployment names an upstream model); answers come back verbatim.
Responses calls go to ``/responses`` when the options say the server has it; otherwise
providers/responses translates them to chat completions before they get here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field

from datamill.errors import ErrorCategory, ProviderError
from datamill.ids import new_provider_request_id
from datamill.providers.answers import body_id
from datamill.providers.base import (
    Capabilities,
    ChatChunk,
    Endpoint,
    ProviderCall,
    ProviderContext,
    ProviderResponse,
    ProviderStream,
    Usage,
)
from datamill.providers.fields import (
    CHAT_FIELDS,
    EMBEDDING_FIELDS,
    MESSAGE_FEATURES,
    YES,
    FieldTable,
)
from datamill.providers.http import HttpPool, error_from_answer
from datamill.providers.openai_batches import MAX_BYTES, MAX_REQUESTS, OpenAIBatches
from datamill.providers.options import parse_options as parse_provider_options
from datamill.providers.ratelimit_headers import rate_limit_hints
from datamill.providers.sse import ServerSentEvent, read_events
from datamill.settings import DeploymentConfig


class OpenAIOptions(BaseModel):
    """What ``deployments.<name>.options`` may say for an `openai` deployment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Whether the server has OpenAI's Files and Batches API (OpenAI does; most
    # OpenAI-compatible servers do not): native-mode batches need it.
    native_batches: bool = True
    batch_max_requests: int = Field(default=MAX_REQUESTS, ge=1, le=MAX_REQUESTS)
    batch_max_bytes: int = Field(default=MAX_BYTES, ge=1024, le=MAX_BYTES)
    # Whether the server has OpenAI's /v1/responses (OpenAI does; vLLM and Groq do, many
    # others do not): Responses calls then pass through instead of being translated to chat
    # completions. Unset: true for OpenAI's own API only.
    responses_api: bool | None = None


class OpenAIProvider:
    """An OpenAI-compatible endpoint at ``deployment.base_url``; with its Batch API as
    ``native_batches`` (`openai_batches`) unless the options say the server has none."""

    capabilities = Capabilities(chat=True, embeddings=True, streaming=True, native_batch=True)
    # Bodies pass through unchanged: every field is the upstream's to judge.
    chat_fields: FieldTable = dict.fromkeys(CHAT_FIELDS + MESSAGE_FEATURES, YES)
    embedding_fields: FieldTable = dict.fromkeys(EMBEDDING_FIELDS, YES)

    def __init__(self, deployment: DeploymentConfig, http: HttpPool) -> None:
        if deployment.base_url is None:
            raise ValueError(f"deployment {deployment.name} has no base_url")
        options = parse_options(deployment)
        self.native_batches: OpenAIBatches | None = None
        if options.native_batches:
            self.native_batches = OpenAIBatches(
                deployment,
                http,
                max_requests=options.batch_max_requests,
                max_bytes=options.batch_max_bytes,
            )
        else:
            self.capabilities = replace(self.capabilities, native_batch=False)
        if _has_responses_api(deployment, options):
            self.capabilities = replace(self.capabilities, responses=True)
        self._http = http
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if deployment.api_key is not None:
            headers["Authorization"] = f"Bearer {deployment.api_key.get_secret_value()}"
        # Rendered once: each call only adds its body.
        self._targets = {
            Endpoint.chat_completions: http.prepare(
                f"{deployment.base_url}/chat/completions", headers
            ),
            Endpoint.embeddings: http.prepare(f"{deployment.base_url}/embeddings", headers),
            Endpoint.responses: http.prepare(f"{deployment.base_url}/responses", headers),
        }
        streaming = {**headers, "Accept": "text/event-stream"}
        self._stream_targets = {
            Endpoint.chat_completions: http.prepare(
                f"{deployment.base_url}/chat/completions", streaming
            ),
            Endpoint.responses: http.prepare(f"{deployment.base_url}/responses", streaming),
        }
        self._models_target = http.prepare(f"{deployment.base_url}/models", headers, method="GET")

    async def list_models(self) -> list[dict[str, Any]]:
        """The server's ``GET /models`` (OpenAI's model list), its entries checked."""
        answer = await self._http.send(self._models_target, data=b"")
        if answer.status >= 300:
            raise error_from_answer(answer)
        try:
            listed = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            listed = None
        data = listed.get("data") if isinstance(listed, dict) else None
        if not isinstance(data, list):
            raise ProviderError(
                ErrorCategory.server_error, "the model list is not OpenAI's {data: [...]}"
            )
        return [_model(item) for item in data if isinstance(item, dict) and _named(item)]

    async def complete(self, call: ProviderCall) -> ProviderResponse:
        return await self._send(call)

    async def embed(self, call: ProviderCall) -> ProviderResponse:
        return await self._send(call)

    async def stream(self, call: ProviderCall) -> ProviderStream:
        if call.endpoint is Endpoint.responses:
            # Responses events, passed on as they come; response.completed carries the usage.
            body = {**call.body, "stream": True}
        else:
            # Usage is always asked for: the gateway accounts for it even when the client did
            # not ask, and drops the usage chunk then.
            body = {**call.body, "stream": True, "stream_options": {"include_usage": True}}
        target = self._stream_targets[call.endpoint]
        answer = await self._http.open_stream(target, data=orjson.dumps(body))

        async def close() -> None:
            answer.close()

        return ProviderStream(
            chunks=_chunks(read_events(answer, max_chars=answer.max_body)),
            request_id=answer.headers.get("x-request-id") or new_provider_request_id(),
            close=close,
            status_code=answer.status,
            rate_limits=rate_limit_hints(answer.headers),
        )

    async def _send(self, call: ProviderCall) -> ProviderResponse:
        data = call.raw if call.raw is not None else orjson.dumps(call.body)
        answer = await self._http.send(self._targets[call.endpoint], data=data)
        if answer.status >= 300:
            raise error_from_answer(answer)
        try:
            parsed = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            raise ProviderError(
                ErrorCategory.server_error,
                "the provider answered 2xx with a body that is not JSON",
                status_code=answer.status,
                body={"error": {"message": answer.body[:500].decode("utf-8", "replace")}},
            ) from None
        body = answer.body
        if b"\n" in body:
            # Output files are JSONL: keep the answer's content, on one line.
            body = orjson.dumps(parsed)
        return ProviderResponse(
            body=body,
            usage=Usage.of(parsed),
            request_id=answer.headers.get("x-request-id")
            or body_id(parsed)
            or new_provider_request_id(),
            status_code=answer.status,
            rate_limits=rate_limit_hints(answer.headers),
        )

    async def aclose(self) -> None:
        return None


async def _chunks(events: AsyncIterator[ServerSentEvent]) -> AsyncIterator[ChatChunk]:
    """OpenAI's stream: one chunk per ``data:`` event until ``[DONE]``; an ``error`` object in
    the stream is the provider failing midway."""
    async for event in events:
        if event.data == "[DONE]":
            return
        try:
            chunk = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise ProviderError(
                ErrorCategory.server_error,
                f"the provider streamed an event that is not JSON: {event.data[:200]!r}",
            ) from None
        if not isinstance(chunk, dict):
            continue
        error = chunk.get("error")
        if chunk.get("type") == "error":  # a Responses stream failing midway
            error = chunk
        if error is not None:
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise ProviderError(
                ErrorCategory.server_error,
                f"the provider failed midway through the stream: {message}",
                body=chunk,
            )
        yield chunk


def _has_responses_api(deployment: DeploymentConfig, options: OpenAIOptions) -> bool:
    if options.responses_api is not None:
        return options.responses_api
    return urlsplit(str(deployment.base_url)).hostname == "api.openai.com"


def parse_options(deployment: DeploymentConfig) -> OpenAIOptions:
    """Validate a deployment's options; `ConfigError` names ``deployments.<name>.options.<key>``."""
    return parse_provider_options(deployment, OpenAIOptions)


def create_openai_provider(
    deployment: DeploymentConfig, context: ProviderContext
) -> OpenAIProvider:
    return OpenAIProvider(deployment, context.http)


def _named(item: dict[str, Any]) -> bool:
    return isinstance(item.get("id"), str) and bool(item["id"])


def _model(item: dict[str, Any]) -> dict[str, Any]:
    """An upstream's model entry as OpenAI's Model object (its own fields kept)."""
    created = item.get("created")
    owned_by = item.get("owned_by")
    return {
        **item,
        "object": "model",
        "created": created if isinstance(created, int) else 0,
        "owned_by": owned_by if isinstance(owned_by, str) else "unknown",
    }
