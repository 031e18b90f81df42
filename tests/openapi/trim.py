"""Make ``openai-schemas.json`` from OpenAI's published OpenAPI document (``openapi.json``
of github.com/openai/openai-openapi): the schemas datamill's answers are checked against
(`ROOTS`) and every schema they refer to, without descriptions and examples.

Run by hand when the document changes: ``python tests/openapi/trim.py openapi.json COMMIT``.
Never run by the tests (they read the trimmed file; nothing is downloaded).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOTS = (
    "OpenAIFile",
    "ListFilesResponse",
    "DeleteFileResponse",
    "Batch",
    "ListBatchesResponse",
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "CreateEmbeddingResponse",
    "Model",
    "ListModelsResponse",
    "Response",
    # The streamed events datamill emits (not all of ResponseStreamEvent).
    "ResponseCreatedEvent",
    "ResponseInProgressEvent",
    "ResponseOutputItemAddedEvent",
    "ResponseContentPartAddedEvent",
    "ResponseTextDeltaEvent",
    "ResponseTextDoneEvent",
    "ResponseRefusalDeltaEvent",
    "ResponseRefusalDoneEvent",
    "ResponseFunctionCallArgumentsDeltaEvent",
    "ResponseFunctionCallArgumentsDoneEvent",
    "ResponseContentPartDoneEvent",
    "ResponseOutputItemDoneEvent",
    "ResponseCompletedEvent",
    "ResponseIncompleteEvent",
    "ResponseFailedEvent",
    "ResponseErrorEvent",
    "ErrorResponse",
)
_DROPPED = {"description", "example", "examples", "x-oaiMeta", "x-oaiTypeLabel", "title"}
_PREFIX = "#/components/schemas/"


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        kept = {k: _strip(v) for k, v in node.items() if k not in _DROPPED}
        # A property may be named like a dropped keyword: keep those inside `properties`.
        if "properties" in node:
            kept["properties"] = {k: _strip(v) for k, v in node["properties"].items()}
        return kept
    if isinstance(node, list):
        return [_strip(item) for item in node]
    return node


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].removeprefix(_PREFIX)} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    return set()


def trim(document: dict[str, Any]) -> dict[str, Any]:
    schemas = document["components"]["schemas"]
    kept: dict[str, Any] = {}
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in kept:
            continue
        kept[name] = _strip(schemas[name])
        todo.extend(_refs(kept[name]) - set(kept))
    return dict(sorted(kept.items()))


def main(source: str, commit: str) -> None:
    document = json.loads(Path(source).read_text())
    out = {
        "$comment": (
            "Trimmed from OpenAI's OpenAPI document (github.com/openai/openai-openapi, "
            f"openapi.json at commit {commit}, version {document['info']['version']}), "
            "MIT License, Copyright (c) OpenAI; see README.md. Made by trim.py."
        ),
        "components": {"schemas": trim(document)},
    }
    target = Path(__file__).with_name("openai-schemas.json")
    target.write_text(json.dumps(out, indent=1, sort_keys=False) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
