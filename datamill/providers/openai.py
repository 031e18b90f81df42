"""The `openai` provider: any OpenAI-compatible API (OpenAI, Groq, Cerebras, OpenRouter,
Together, vLLM, Ollama, llama.cpp). Request bodies go through unchanged (only ``model`` is
rewritten when the deployment names an upstream model); answers come back verbatim."""

from __future__ import annotations

from typing import Any

import orjson

from datamill.errors import ErrorCategory, ProviderError
from datamill.ids import new_provider_request_id
from datamill.providers.base import (
    Capabilities,
    Endpoint,
    ProviderCall,
    ProviderContext,
    ProviderResponse,
    Usage,
)
from datamill.providers.http import HttpPool, error_from_answer, rate_limit_hints
from datamill.settings import DeploymentConfig


class OpenAIProvider:
    """An OpenAI-compatible endpoint at ``deployment.base_url``."""

    capabilities = Capabilities(chat=True, embeddings=True)

    def __init__(self, deployment: DeploymentConfig, http: HttpPool) -> None:
        if deployment.base_url is None:
            raise ValueError(f"deployment {deployment.name} has no base_url")
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
        }

    async def complete(self, call: ProviderCall) -> ProviderResponse:
        return await self._send(call)

    async def embed(self, call: ProviderCall) -> ProviderResponse:
        return await self._send(call)

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
            usage=usage_from_body(parsed),
            request_id=answer.headers.get("x-request-id")
            or _body_id(parsed)
            or new_provider_request_id(),
            status_code=answer.status,
            rate_limits=rate_limit_hints(answer.headers),
        )

    async def aclose(self) -> None:
        return None


def _body_id(parsed: Any) -> str | None:
    value = parsed.get("id") if isinstance(parsed, dict) else None
    return value if isinstance(value, str) and value else None


def usage_from_body(parsed: Any) -> Usage:
    """Token usage of an OpenAI chat completion or embeddings answer."""
    usage = parsed.get("usage") if isinstance(parsed, dict) else None
    if not isinstance(usage, dict):
        return Usage()
    prompt = usage.get("prompt_tokens") or usage.get("input_tokens") or 0
    completion = usage.get("completion_tokens") or usage.get("output_tokens") or 0
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=int(prompt),
        output_tokens=int(completion),
        cached_tokens=int(prompt_details.get("cached_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


def create_openai_provider(
    deployment: DeploymentConfig, context: ProviderContext
) -> OpenAIProvider:
    return OpenAIProvider(deployment, context.http)
