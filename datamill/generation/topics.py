"""A spec's topics: its list, or the leaves of a topic tree a model generates once.

Generated topics are asked of the model through the gateway (the same deployments, limits
and accounting as any call), as JSON with a schema: an array of ``count`` distinct strings.
The job stores what came back, so a resumed job keeps its topics.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from datamill.errors import InvalidRequest
from datamill.gateway.requests import GatewayRequest
from datamill.gateway.service import GatewayService
from datamill.generation.confined import RenderItem, render_one
from datamill.generation.extract import ExtractionError, extract_json
from datamill.generation.spec import GenerationSpec
from datamill.generation.templates import TemplateProblem
from datamill.providers.base import Endpoint

DEFAULT_PROMPT = (
    "List {{ count }} distinct, specific subtopics of {{ path | join(' > ') }} that training "
    'examples could be written about. Answer with JSON: an object whose key "topics" holds '
    "the list of names, each a short noun phrase."
)


async def resolve_topics(spec: GenerationSpec, gateway: GatewayService) -> list[str]:
    """The spec's topics; a ``generate`` spec asks its model for a topic tree, level by
    level (one call per inner node), and takes its first ``count`` leaves, each named by
    its path (``Contracts > Formation > Offer and acceptance``)."""
    if spec.topics.items is not None:
        return list(spec.topics.items)
    generate = spec.topics.generate
    if generate is None:  # `file` is inlined into items when the spec is read
        raise InvalidRequest(
            "spec.topics.file: a spec sent to the API must list its topics (items)",
            param="spec.topics.file",
            code="invalid_spec",
        )
    # Children per node, so that the leaves are at least `count`.
    branching = max(1, math.ceil(generate.count ** (1 / generate.depth)))
    level: list[list[str]] = [[generate.root]]
    for depth in range(generate.depth):
        wanted = generate.count if generate.depth == 1 else branching
        children: list[list[str]] = []
        for path in level:
            names = await _ask(spec, gateway, path, wanted)
            children += [[*path, name] for name in names]
            if depth == generate.depth - 1 and len(children) >= generate.count:
                break
        level = children
    leaves = [" > ".join(path[1:]) for path in level]
    return list(dict.fromkeys(leaf[:200] for leaf in leaves))[: generate.count]


async def _ask(
    spec: GenerationSpec, gateway: GatewayService, path: list[str], count: int
) -> list[str]:
    generate = spec.topics.generate
    assert generate is not None
    try:
        prompt = await render_one(
            RenderItem(
                generate.prompt or DEFAULT_PROMPT,
                {"root": generate.root, "count": count, "path": path},
            )
        )
    except TemplateProblem as exc:
        raise InvalidRequest(
            f"spec.topics.generate.prompt: {exc}",
            param="spec.topics.generate.prompt",
            code="invalid_spec",
        ) from None
    schema = {
        "type": "object",
        "required": ["topics"],
        "additionalProperties": False,
        "properties": {
            "topics": {
                "type": "array",
                "minItems": count,
                "maxItems": count,
                "uniqueItems": True,
                "items": {"type": "string", "minLength": 3, "maxLength": 60},
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
        name = item.strip().replace(" > ", " - ") if isinstance(item, str) else ""
        if name and name not in topics:
            topics.append(name)
    if not topics:
        raise InvalidRequest(
            "spec.topics.generate: the model's answer held no topics",
            param="spec.topics.generate",
            code="topics_not_generated",
        )
    return topics[:count]
