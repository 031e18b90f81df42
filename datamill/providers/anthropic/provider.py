"""The `anthropic` provider: Anthropic's Messages API behind OpenAI's chat completions.

Requests are translated (`request`), answers translated back (`response`, `stream`), errors
and rate-limit headers read (`errors`); Message Batches are `native_batches` (`native`); the
model list is `list_models` (`models`).
Anthropic has no embeddings API: embeddings are refused.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import orjson

from datamill.errors import ErrorCategory, ProviderError
from datamill.ids import new_provider_request_id
from datamill.providers.anthropic.errors import error_from_answer, rate_limit_hints, request_id
from datamill.providers.anthropic.models import list_models
from datamill.providers.anthropic.native import AnthropicBatches
from datamill.providers.anthropic.options import DEFAULT_BASE_URL, parse_options
from datamill.providers.anthropic.request import messages_request
from datamill.providers.anthropic.response import completion_response
from datamill.providers.anthropic.stream import chat_chunks
from datamill.providers.anthropic.table import CHAT_FIELD_TABLE
from datamill.providers.base import (
    Capabilities,
    Endpoint,
    ProviderCall,
    ProviderContext,
    ProviderResponse,
    ProviderStream,
)
from datamill.providers.fields import FieldTable
from datamill.providers.http import HttpAnswer
from datamill.providers.sse import read_events
from datamill.settings import DeploymentConfig


class AnthropicProvider:
    """Anthropic's API at ``deployment.base_url`` (default ``https://api.anthropic.com``).

    Guarantees: a request field Anthropic cannot express is refused (`bad_request` naming
    it) before anything is sent; answers are OpenAI ``chat.completion`` objects on one line;
    every failure is a `ProviderError` whose category follows Anthropic's error type."""

    capabilities = Capabilities(chat=True, embeddings=False, streaming=True, native_batch=True)
    chat_fields: FieldTable = CHAT_FIELD_TABLE
    embedding_fields: FieldTable = MappingProxyType({})  # no embeddings API

    def __init__(self, deployment: DeploymentConfig, context: ProviderContext) -> None:
        self.options = parse_options(deployment)
        self._http = context.http
        self._clock = context.clock
        base_url = deployment.base_url or DEFAULT_BASE_URL
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "anthropic-version": self.options.anthropic_version,
        }
        if deployment.api_key is not None:
            headers["x-api-key"] = deployment.api_key.get_secret_value()
        if self.options.beta:
            headers["anthropic-beta"] = ",".join(self.options.beta)
        self._base_url = base_url
        self._headers = headers
        # Rendered once: each call only adds its body.
        self._messages = context.http.prepare(f"{base_url}/v1/messages", headers)
        self._stream = context.http.prepare(
            f"{base_url}/v1/messages", {**headers, "Accept": "text/event-stream"}
        )
        self.native_batches = AnthropicBatches(
            context.http,
            base_url=base_url,
            headers=headers,
            options=self.options,
            clock=context.clock,
        )

    def translate(self, call: ProviderCall) -> dict[str, Any]:
        """The Anthropic Messages request of ``call`` (refusals raise `ProviderError`)."""
        if call.endpoint is not Endpoint.chat_completions:
            raise _no_embeddings()
        return messages_request(call.body, self.options)

    async def complete(self, call: ProviderCall) -> ProviderResponse:
        request = self.translate(call)
        answer = await self._http.send(self._messages, data=orjson.dumps(request))
        now = self._clock.now()
        if answer.status >= 300:
            raise error_from_answer(answer, now=now)
        try:
            message: Any = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            message = answer.body[:500].decode("utf-8", "replace")
        identifier = request_id(answer.headers)
        if identifier is None and isinstance(message, dict):
            identifier = message.get("id")
        return completion_response(
            message,
            created=int(now),
            request_id=identifier if isinstance(identifier, str) else new_provider_request_id(),
            status_code=answer.status,
            rate_limits=rate_limit_hints(answer.headers, now=now),
        )

    async def stream(self, call: ProviderCall) -> ProviderStream:
        request = {**self.translate(call), "stream": True}
        answer = await self._http.open_stream(
            self._stream, data=orjson.dumps(request), error=self._error
        )
        now = self._clock.now()

        async def close() -> None:
            answer.close()

        return ProviderStream(
            chunks=chat_chunks(read_events(answer, max_chars=answer.max_body), created=int(now)),
            request_id=request_id(answer.headers) or new_provider_request_id(),
            close=close,
            status_code=answer.status,
            rate_limits=rate_limit_hints(answer.headers, now=now),
        )

    async def embed(self, call: ProviderCall) -> ProviderResponse:
        raise _no_embeddings()

    async def list_models(self) -> list[dict[str, Any]]:
        """Anthropic's model list (every page), as OpenAI's Model objects."""
        return await list_models(
            self._http, base_url=self._base_url, headers=self._headers, clock=self._clock
        )

    async def aclose(self) -> None:
        return None

    def _error(self, answer: HttpAnswer) -> ProviderError:
        return error_from_answer(answer, now=self._clock.now())


def _no_embeddings() -> ProviderError:
    message = (
        "Anthropic has no embeddings API; send embeddings to a deployment whose provider has them"
    )
    return ProviderError(
        ErrorCategory.not_found,
        message,
        body={"error": {"message": message, "type": "invalid_request_error", "param": None}},
    )


def create_anthropic_provider(
    deployment: DeploymentConfig, context: ProviderContext
) -> AnthropicProvider:
    """The `ProviderFactory` of the ``anthropic`` provider type."""
    return AnthropicProvider(deployment, context)
