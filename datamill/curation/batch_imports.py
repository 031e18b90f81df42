"""A batch's answers as samples: one per succeeded request, keeping its request and answer.

A chat completion becomes the fine-tuning chat shape, ``{"messages": [...the request's
messages, the assistant's answer]}``; the request's other parameters (``model``,
``temperature``, ``tools``...) go to ``provenance.request``. Any other endpoint (or a body
that is not the chat shape) becomes ``{"request": body, "response": answer}``. The
provenance says ``source: batch`` with the ``batch_id``, the ``request_id`` (its
``custom_id``), model, deployment, tokens and cost.

Importing twice adds nothing: requests whose ``custom_id`` a sample of the dataset (deleted
or not) already names for this batch are skipped, and so is a content a live sample has.
A content the dataset's default task schema refuses is left out and counted (``invalid``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from datamill.protocol.datasets import BatchImportReport
from datamill.protocol.task_schema_format import TaskSchema
from datamill.storage import samples as sample_repo
from datamill.storage.database import Database
from datamill.storage.records import BatchRecord
from datamill.storage.results import Answer, iter_answers
from datamill.storage.samples import NewSample
from datamill.task_schemas.validation import content_problems

CHAT_ENDPOINT = "/v1/chat/completions"


def _json(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return data.decode(errors="replace")


def _chat_content(request: Any, response: Any) -> dict[str, Any] | None:
    """``{"messages": [...]}`` for a chat completion, or None when the bodies are not one."""
    if not isinstance(request, dict) or not isinstance(response, dict):
        return None
    messages, choices = request.get("messages"), response.get("choices")
    if not isinstance(messages, list) or not isinstance(choices, list) or not choices:
        return None
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    if not isinstance(message, dict):
        return None
    answer: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        answer["tool_calls"] = message["tool_calls"]
    return {"messages": [*messages, answer]}


def answer_sample(batch: BatchRecord, answer: Answer) -> NewSample:
    """The sample to store for one succeeded request of ``batch``."""
    request, response = _json(answer.request), _json(answer.response)
    provenance: dict[str, Any] = {
        "source": "batch",
        "batch_id": batch.id,
        "request_id": answer.custom_id,
        "endpoint": batch.endpoint,
        "deployment": answer.deployment,
        "input_tokens": answer.input_tokens,
        "output_tokens": answer.output_tokens,
        "cost": answer.cost,
    }
    content = _chat_content(request, response) if batch.endpoint == CHAT_ENDPOINT else None
    if content is not None:
        provenance["request"] = {k: v for k, v in request.items() if k != "messages"}
        provenance["response_id"] = response.get("id")
        provenance["finish_reason"] = response["choices"][0].get("finish_reason")
    else:
        content = {"request": request, "response": response}
    model = answer.model or (response.get("model") if isinstance(response, dict) else None)
    return NewSample(
        content=content,
        model=model if isinstance(model, str) and model else None,
        provenance=provenance,
    )


async def import_answers(
    database: Database,
    dataset_id: str,
    batch: BatchRecord,
    *,
    project_id: str,
    now: float,
    schema: TaskSchema | None = None,
) -> BatchImportReport | None:
    """Store a batch's succeeded answers in a live dataset of the project, in one
    transaction; None (nothing stored) when the project has no such live dataset. A
    content ``schema`` (the dataset's default task schema) refuses is left out and
    counted as ``invalid``."""
    done = await sample_repo.batch_request_ids(database, dataset_id, batch.id)
    answers = 0
    invalid = 0

    async def chunks() -> AsyncIterator[list[NewSample]]:
        nonlocal answers, invalid
        async for page in iter_answers(database, batch.id):
            answers += len(page)
            rows = [answer_sample(batch, a) for a in page if a.custom_id not in done]
            if schema is not None and rows:
                found = await content_problems([(schema, row.content) for row in rows])
                invalid += sum(1 for problem in found if problem is not None)
                rows = [row for row, problem in zip(rows, found, strict=True) if problem is None]
            if rows:
                yield rows

    stored = await sample_repo.import_samples(
        database, dataset_id, chunks(), project_id=project_id, now=now
    )
    if stored is None:
        return None
    imported = sum(1 for sample_id in stored.ids if sample_id is not None)
    return BatchImportReport(
        dataset_id=dataset_id,
        batch_id=batch.id,
        requests=answers,
        imported=imported,
        duplicates=answers - imported - invalid,
        invalid=invalid,
    )
