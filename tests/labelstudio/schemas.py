"""Task schemas the Label Studio tests share."""

from __future__ import annotations

from datamill.protocol.task_schema_format import TaskSchema

QA = TaskSchema.model_validate(
    {
        "name": "qa",
        "display": {
            "fields": [
                {"field": "question"},
                {"field": "answer.text", "label": "Answer", "kind": "markdown"},
                {"field": "messages", "kind": "chat"},
                {"field": "meta", "kind": "json"},
            ]
        },
        "review": {
            "questions": [
                {"name": "decision", "kind": "decision", "reasons": ["wrong", "toxic"]},
                {"name": "rating", "kind": "rating", "required": False},
                {"name": "topic", "kind": "labels", "options": ["math", "art"], "multiple": True},
                {
                    "name": "tone",
                    "kind": "labels",
                    "options": ["formal", "casual"],
                    "required": False,
                },
                {"name": "comment", "kind": "text", "required": False},
            ]
        },
    }
)

PLAIN = TaskSchema.model_validate(
    {
        "name": "plain",
        "content": {"type": "object", "properties": {"prompt": {}, "completion": {}}},
        "review": {"editable": False, "questions": [{"name": "ok", "kind": "decision"}]},
    }
)
