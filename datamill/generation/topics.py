"""A spec's topics: its list, or the leaves of a topic tree a model generates once.

Generated topics are asked of the model through the gateway (the same deployments, limits
and accounting as any call), as JSON with a schema: an array of ``count`` distinct strings.
The job stores what came back, so a resumed job keeps its topics.
"""

from __future__ import annotations

from typing import Any

import orjson
from jinja2.sandbox import SandboxedEnvironment

from datamill.errors import InvalidRequest
from datamill.gateway.requests import GatewayRequest
from datamill.gateway.service import GatewayService
from datamill.generation.extract import ExtractionError, extract_json
from datamill.generation.spec import GenerationSpec
from datamill.providers.base import Endpoint

DEFAULT_PROMPT = (
    "List {{ count }} distinct, specific subtopics of {{ root }} that training examples "
    'could be written about. Answer with JSON: an object whose key "topics" holds the '
    "list of names, each a short noun phrase."
)


async def resolve_topics(spec: GenerationSpec, gateway: GatewayService) -> list[str]:
    """The spec's topics; a ``generate`` spec calls its model once."""
    if spec.topics.items is not None:
        return list(spec.topics.items)
    generate = spec.topics.generate
    if generate is None:  # `file` is inlined into items when the spec is read
        raise InvalidRequest(
            "spec.topics.file: a spec sent to the API must list its topics (items)",
            param="spec.topics.file",
            code="invalid_spec",
        )
    prompt = (
        SandboxedEnvironment()
        .from_string(generate.prompt or DEFAULT_PROMPT)
        .render(root=generate.root, count=generate.count)
    )
    schema = {
        "type": "object",
        "required": ["topics"],
        "additionalProperties": False,
        "properties": {
            "topics": {
                "type": "array",
                "minItems": generate.count,
                "maxItems": generate.count,
                "uniqueItems": True,
                "items": {"type": "string", "minLength": 3, "maxLength": 120},
            }
        },
    }
    model = generate.model or spec.model
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "topics", "schema": schema},
        },
    }
    answer = await gateway.complete(
        GatewayRequest(Endpoint.chat_completions, body, orjson.dumps(body), model)
    )
    try:
        value = extract_json(orjson.loads(answer.body))
    except (ExtractionError, orjson.JSONDecodeError) as exc:
        raise InvalidRequest(
            f"spec.topics.generate: the model's answer held no topics ({exc})",
            param="spec.topics.generate",
            code="topics_not_generated",
        ) from None
    items = value.get("topics") if isinstance(value, dict) else value
    topics: list[str] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str) and item.strip() and item.strip() not in topics:
            topics.append(item.strip()[:200])
    if not topics:
        raise InvalidRequest(
            "spec.topics.generate: the model's answer held no topics",
            param="spec.topics.generate",
            code="topics_not_generated",
        )
    return topics[: generate.count]
