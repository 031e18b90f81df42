"""The `gemini` provider: Google's Gemini API (generateContent, streaming, embeddings, batch
mode), spoken natively and translated to and from OpenAI's formats.

Guarantees: every OpenAI field is translated faithfully or refused with a `bad_request`
naming it (`request.CHAT_TABLE`, `embeddings.EMBEDDING_TABLE`); answers are OpenAI
``chat.completion`` / embeddings lists on one line, with usage; every failure is a
`ProviderError` with its category and Gemini's retry hint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from datamill.errors import ErrorCategory, ProviderError
from datamill.ids import new_provider_request_id
from datamill.providers.base import (
    Capabilities,
    ChatChunk,
    ProviderCall,
    ProviderContext,
    ProviderResponse,
    ProviderStream,
)
from datamill.providers.fields import FieldTable
from datamill.providers.gemini import embeddings, response
from datamill.providers.gemini.client import GeminiClient, model_path
from datamill.providers.gemini.errors import refused
from datamill.providers.gemini.models import list_models
from datamill.providers.gemini.native import GeminiBatches
from datamill.providers.gemini.options import parse_options
from datamill.providers.gemini.request import CHAT_TABLE, translate_chat
from datamill.providers.gemini.stream import ChunkTranslator, parse_event, translate_events
from datamill.providers.sse import read_events
from datamill.settings import DeploymentConfig


class GeminiProvider:
    """A Gemini API deployment (``base_url`` defaults to Google's endpoint)."""

    capabilities = Capabilities(chat=True, embeddings=True, streaming=True, native_batch=True)
    chat_fields: FieldTable = CHAT_TABLE
    embedding_fields: FieldTable = embeddings.EMBEDDING_TABLE

    def __init__(self, deployment: DeploymentConfig, context: ProviderContext) -> None:
        self.options = parse_options(deployment)
        self._client = GeminiClient(deployment, context.http, self.options)
        self._clock = context.clock
        self.native_batches = GeminiBatches(self._client, self.options, context.clock)

    async def complete(self, call: ProviderCall) -> ProviderResponse:
        model = _model(call.body)
        request = translate_chat(call.body, self.options)
        data = await self._client.call(f"{model_path(model)}:generateContent", request)
        return response.provider_response(data, model=model, created=int(self._clock.now()))

    async def stream(self, call: ProviderCall) -> ProviderStream:
        model = _model(call.body)
        request = translate_chat(call.body, self.options)
        path = f"{model_path(model)}:streamGenerateContent?alt=sse"
        answer = await self._client.open_stream(path, request)
        events = read_events(answer, max_chars=answer.max_body).__aiter__()
        translator = ChunkTranslator(model=model, created=int(self._clock.now()))
        # The first event is read here, so that a prompt Gemini blocks (it still answers
        # 200) or an immediate error is refused before the caller streams anything.
        try:
            first_event = await anext(events, None)
            first = parse_event(first_event) if first_event is not None else None
            opening = translator.chunks(first) if first is not None else []
        except BaseException:
            answer.close()
            raise

        async def chunks() -> AsyncIterator[ChatChunk]:
            for chunk in opening:
                yield chunk
            async for chunk in translate_events(events, translator):
                yield chunk

        async def close() -> None:
            answer.close()

        request_id = first.get("responseId") if first else None
        return ProviderStream(
            chunks=chunks(),
            request_id=request_id or new_provider_request_id(),
            close=close,
            status_code=answer.status,
        )

    async def embed(self, call: ProviderCall) -> ProviderResponse:
        body = call.body
        model = _model(body)
        texts = embeddings.embedding_inputs(body)
        path = model_path(model)
        found: list[list[float]] = []
        reported: int | None = 0
        try:
            if isinstance(body.get("input"), str):
                request = embeddings.embed_request(texts[0], body, self.options)
                answer = await self._client.call(f"{path}:embedContent", request)
                found, reported = embeddings.vectors(answer, 1), embeddings.reported_tokens(answer)
            else:
                for start in range(0, len(texts), embeddings.BATCH_LIMIT):
                    batch = texts[start : start + embeddings.BATCH_LIMIT]
                    requests = [
                        embeddings.embed_request(t, body, self.options, model=path) for t in batch
                    ]
                    answer = await self._client.call(
                        f"{path}:batchEmbedContents", {"requests": requests}
                    )
                    found += embeddings.vectors(answer, len(batch))
                    tokens = embeddings.reported_tokens(answer)
                    reported = None if reported is None or tokens is None else reported + tokens
        except ValueError as exc:
            raise ProviderError(
                ErrorCategory.server_error, f"Gemini's embeddings answer is malformed: {exc}"
            ) from None
        result, usage = embeddings.embeddings_answer(body, texts, found, reported)
        return ProviderResponse(
            body=orjson.dumps(result), usage=usage, request_id=new_provider_request_id()
        )

    async def list_models(self) -> list[dict[str, Any]]:
        """Gemini's models that generate content (every page), as OpenAI's Model objects."""
        return await list_models(self._client)

    async def aclose(self) -> None:
        return None


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise refused("model", "is missing")
    return model


def create_gemini_provider(
    deployment: DeploymentConfig, context: ProviderContext
) -> GeminiProvider:
    """The `ProviderFactory` of the ``gemini`` provider type."""
    return GeminiProvider(deployment, context)
