"""OpenAI embeddings requests to Gemini ``embedContent`` / ``batchEmbedContents``, and back.

Reference: Gemini API, "Embeddings" (``EmbedContentRequest``, ``BatchEmbedContentsRequest``,
``ContentEmbedding``). One string goes to ``embedContent``; a list goes to
``batchEmbedContents``, at most `BATCH_LIMIT` texts per call. When Gemini reports no token
count, usage is estimated offline (`datamill.nlp.tokens`).
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from datamill.nlp.tokens import estimate_tokens
from datamill.providers.base import Usage, clamp_tokens
from datamill.providers.fields import EMBEDDING_FIELDS, YES, FieldTable, partial, reject_unsupported
from datamill.providers.gemini.errors import PROVIDER, refused
from datamill.providers.gemini.options import GeminiOptions

EMBEDDING_TABLE: FieldTable = {
    **dict.fromkeys(EMBEDDING_FIELDS, YES),
    "input": partial("strings; token-id arrays are rejected"),
    "user": partial("accepted, not sent: Gemini has no end-user identifier"),
}
BATCH_LIMIT = 100  # texts per batchEmbedContents call (Gemini's limit)


def embedding_inputs(body: dict[str, Any]) -> list[str]:
    """The texts to embed; refuses what Gemini cannot take, naming the field."""
    reject_unsupported(body, EMBEDDING_TABLE, provider=PROVIDER)
    given = body.get("input")
    items = [given] if isinstance(given, str) else given
    if not isinstance(items, list) or not items:
        raise refused("input", "must be a non-empty string or array of strings")
    for item in items:
        if not isinstance(item, str):
            raise refused("input", "token-id arrays cannot be sent (Gemini embeds text)")
        if not item:
            raise refused("input", "holds an empty string")
    dimensions = body.get("dimensions")
    if dimensions is not None and (
        not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1
    ):
        raise refused("dimensions", "must be a positive integer")
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise refused("encoding_format", "must be float or base64")
    return items


def embed_request(
    text: str, body: dict[str, Any], options: GeminiOptions, *, model: str | None = None
) -> dict[str, Any]:
    """One ``EmbedContentRequest``; ``model`` is set inside a batch."""
    request: dict[str, Any] = {"content": {"parts": [{"text": text}]}}
    if model is not None:
        request = {"model": model, **request}
    if body.get("dimensions") is not None:
        request["outputDimensionality"] = body["dimensions"]
    if options.embedding_task_type:
        request["taskType"] = options.embedding_task_type
    return request


def vectors(answer: Any, count: int) -> list[list[float]]:
    """The vectors of an ``embedContent`` or ``batchEmbedContents`` answer."""
    found: Any = None
    if isinstance(answer, dict) and isinstance(answer.get("embedding"), dict):
        found = [answer["embedding"]]
    elif isinstance(answer, dict):
        found = answer.get("embeddings")
    if not isinstance(found, list) or len(found) != count:
        raise ValueError(f"expected {count} embeddings")
    result = []
    for item in found:
        values = item.get("values") if isinstance(item, dict) else None
        if not isinstance(values, list):
            raise ValueError("an embedding has no values")
        result.append([float(v) for v in values])
    return result


def reported_tokens(answer: Any) -> int | None:
    metadata = answer.get("usageMetadata") if isinstance(answer, dict) else None
    if isinstance(metadata, dict) and metadata.get("promptTokenCount") is not None:
        return clamp_tokens(metadata["promptTokenCount"])
    return None


def embeddings_answer(
    body: dict[str, Any], texts: list[str], found: list[list[float]], reported: int | None
) -> tuple[dict[str, Any], Usage]:
    """OpenAI's embeddings list; ``reported`` is Gemini's token count, when it gave one."""
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, vector in enumerate(found):
        embedding: Any = vector
        if as_base64:
            # OpenAI's base64 form: the little-endian float32 bytes of the vector.
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = reported if reported is not None else sum(estimate_tokens(t) for t in texts)
    answer = {
        "object": "list",
        "data": data,
        "model": body.get("model"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return answer, Usage(input_tokens=tokens)
