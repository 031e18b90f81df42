"""Task schemas (`/api/task-schemas`): datamill's own shapes. A schema's format is
`protocol.task_schema_format.TaskSchema`; its JSON Schema is ``GET /api/task-schemas/_format``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class TaskSchemaObject(BaseModel):
    """One version of a task schema."""

    object: Literal["task_schema"] = "task_schema"
    name: str
    version: int  # 1 when created; each update adds one
    format_version: int  # of the schema format (`SCHEMA_FORMAT_VERSION`)
    created_at: int  # when this version was stored
    created_by: str | None  # the key id that stored it; None: local
    definition: dict[str, Any]  # the schema, every default filled in


class TaskSchemaDeleted(BaseModel):
    object: Literal["task_schema.deleted"] = "task_schema.deleted"
    name: str
    deleted: bool = True
