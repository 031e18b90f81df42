"""`/api/task-schemas`: a project's task schemas, their versions, the JSON Schema of their
format, and each one's Label Studio labeling config."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from datamill.api.deps import ProjectDep, RuntimeDep
from datamill.callers import MEMBER, VIEWER, CallerDep
from datamill.protocol.common import ListObject
from datamill.protocol.task_schema_format import NAME_PATTERN, TaskSchema, schema_format
from datamill.protocol.task_schemas import TaskSchemaDeleted, TaskSchemaObject
from datamill.render.task_schemas import task_schema_object

router = APIRouter(prefix="/api/task-schemas", tags=["task schemas"])

Name = Annotated[str, Path(pattern=NAME_PATTERN, description="the schema's name")]
Version = Annotated[
    int | None, Query(ge=1, le=2**31 - 1, description="a past version (default: the latest)")
]


@router.post("", dependencies=[MEMBER], response_model=TaskSchemaObject)
async def create_task_schema(
    body: TaskSchema, runtime: RuntimeDep, project_id: ProjectDep, caller: CallerDep
) -> TaskSchemaObject:
    """Store version 1 of a new schema; a 409 ``task_schema_exists`` for a live name."""
    record = await runtime.task_schemas.create(project_id, body, created_by=caller.key_id)
    return task_schema_object(record)


@router.get("", dependencies=[VIEWER], response_model=ListObject[TaskSchemaObject])
async def list_task_schemas(runtime: RuntimeDep, project_id: ProjectDep) -> ListObject[Any]:
    """The latest version of each live schema, by name."""
    records = await runtime.task_schemas.list_schemas(project_id)
    return ListObject[Any].page([task_schema_object(r) for r in records], has_more=False)


# Before `/{name}`: a name never starts with `_`, so this is never a schema's.
@router.get("/_format", dependencies=[VIEWER])
async def task_schema_format() -> dict[str, Any]:
    """The JSON Schema of the task schema format."""
    return schema_format()


@router.get("/{name}", dependencies=[VIEWER], response_model=TaskSchemaObject)
async def retrieve_task_schema(
    name: Name, runtime: RuntimeDep, project_id: ProjectDep, version: Version = None
) -> TaskSchemaObject:
    record = await runtime.task_schemas.get(project_id, name, version=version)
    return task_schema_object(record)


@router.get("/{name}/versions", dependencies=[VIEWER], response_model=ListObject[TaskSchemaObject])
async def list_task_schema_versions(
    name: Name, runtime: RuntimeDep, project_id: ProjectDep
) -> ListObject[Any]:
    """Every live version, oldest first."""
    records = await runtime.task_schemas.versions(project_id, name)
    return ListObject[Any].page([task_schema_object(r) for r in records], has_more=False)


@router.put("/{name}", dependencies=[MEMBER], response_model=TaskSchemaObject)
async def update_task_schema(
    name: Name, body: TaskSchema, runtime: RuntimeDep, project_id: ProjectDep, caller: CallerDep
) -> TaskSchemaObject:
    """Store the schema as the next version (the body's ``name`` must be the path's)."""
    record = await runtime.task_schemas.update(project_id, name, body, created_by=caller.key_id)
    return task_schema_object(record)


@router.delete("/{name}", dependencies=[MEMBER], response_model=TaskSchemaDeleted)
async def delete_task_schema(
    name: Name, runtime: RuntimeDep, project_id: ProjectDep
) -> TaskSchemaDeleted:
    """Hide every version; samples it applied to fall back to their dataset's default."""
    await runtime.task_schemas.delete(project_id, name)
    return TaskSchemaDeleted(name=name)


@router.get(
    "/{name}/label-studio",
    dependencies=[VIEWER],
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}},
)
async def label_studio_config(
    name: Name, runtime: RuntimeDep, project_id: ProjectDep, version: Version = None
) -> Response:
    """The schema's Label Studio labeling config, as XML."""
    xml = await runtime.task_schemas.label_studio_config(project_id, name, version=version)
    return Response(xml, media_type="application/xml")
