"""Task schemas (`/api/task-schemas`), for the API and the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from datamill.protocol.task_schemas import TaskSchemaObject

if TYPE_CHECKING:
    from datamill.storage.task_schemas import TaskSchemaRecord

# The schema format's version (`datamill.protocol.task_schema_format.SCHEMA_FORMAT_VERSION`; a test
# checks they agree: rendering sits below the task schemas' package).
FORMAT_VERSION = 1


def task_schema_object(record: TaskSchemaRecord) -> TaskSchemaObject:
    return TaskSchemaObject(
        name=record.name,
        version=record.version,
        format_version=FORMAT_VERSION,
        created_at=int(record.created_at),
        created_by=record.created_by,
        definition=record.definition,
    )
