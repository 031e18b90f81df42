"""TaskSchemaService: the registry of a project's task schemas, and the one place that says
which schema a sample follows.

A sample follows the project's live schema named like its ``sample_type``; else its
dataset's default schema (``task_schema``, when that schema is live); else `DEFAULT_SCHEMA`.
`schema_for` answers for one sample; `schemas_for` reads every schema a page (or a whole
export) needs in one query, so a 100k-sample export resolves once per sample type.

Guarantees: an update is a new version, older versions stay readable; deleting hides every
version (soft); names and versions of another project are 404s, as unknown ones are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from datamill.clock import Clock
from datamill.errors import Conflict, InvalidRequest, NotFound
from datamill.protocol.task_schema_format import DEFAULT_SCHEMA, TaskSchema
from datamill.storage import task_schemas as repo
from datamill.storage.database import Database
from datamill.storage.datasets import DatasetRecord
from datamill.storage.task_schemas import TaskSchemaExists, TaskSchemaRace, TaskSchemaRecord
from datamill.task_schemas.files import checked
from datamill.task_schemas.label_studio import labeling_config

# Parsed definitions kept (a stored version never changes), at most this many.
_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class SchemaSet:
    """The schemas a set of samples follows: by sample type, and the fallback."""

    named: Mapping[str, TaskSchema]
    fallback: TaskSchema

    def for_type(self, sample_type: str | None) -> TaskSchema:
        if sample_type is not None:
            found = self.named.get(sample_type)
            if found is not None:
                return found
        return self.fallback


class TaskSchemaService:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock
        self._parsed: dict[tuple[str, str, int], TaskSchema] = {}

    # -- the registry -----------------------------------------------------------------------

    async def create(
        self, project_id: str, schema: TaskSchema, *, created_by: str | None = None
    ) -> TaskSchemaRecord:
        """Store version 1 of a new schema; a 409 when a live one has its name."""
        try:
            record = await repo.add_version(
                self._db,
                project_id=project_id,
                name=schema.name,
                definition=_definition(schema),
                created_by=created_by,
                now=self._clock.now(),
                create=True,
            )
        except (TaskSchemaExists, TaskSchemaRace):
            raise Conflict(
                f"a task schema named {schema.name!r} exists already: update it instead",
                param="name",
                code="task_schema_exists",
            ) from None
        assert record is not None
        return record

    async def update(
        self, project_id: str, name: str, schema: TaskSchema, *, created_by: str | None = None
    ) -> TaskSchemaRecord:
        """Store the next version of a live schema (``schema.name`` must be ``name``)."""
        await self.get(project_id, name)  # a 404 first: another project's name is unknown
        if schema.name != name:
            raise InvalidRequest(
                f"the schema is named {schema.name!r}, not {name!r}: a schema keeps its name",
                param="name",
            )
        try:
            record = await repo.add_version(
                self._db,
                project_id=project_id,
                name=name,
                definition=_definition(schema),
                created_by=created_by,
                now=self._clock.now(),
                create=False,
            )
        except TaskSchemaRace:
            raise Conflict(
                f"task schema {name!r} was updated meanwhile: read it and try again",
                param="name",
                code="task_schema_changed",
            ) from None
        if record is None:
            raise no_schema(name)
        return record

    async def get(
        self, project_id: str, name: str, *, version: int | None = None
    ) -> TaskSchemaRecord:
        """A live schema's latest version, or its ``version``."""
        record = await repo.get_schema(self._db, project_id=project_id, name=name, version=version)
        if record is None:
            if version is not None and await repo.get_schema(
                self._db, project_id=project_id, name=name
            ):
                raise NotFound(f"task schema {name!r} has no version {version}", param="version")
            raise no_schema(name)
        return record

    async def list_schemas(self, project_id: str) -> list[TaskSchemaRecord]:
        """The latest version of each live schema, by name."""
        return await repo.latest_schemas(self._db, project_id=project_id)

    async def versions(self, project_id: str, name: str) -> list[TaskSchemaRecord]:
        """A live schema's versions, oldest first."""
        found = await repo.list_versions(self._db, project_id=project_id, name=name)
        if not found:
            raise no_schema(name)
        return found

    async def delete(self, project_id: str, name: str) -> None:
        """Hide every version of a live schema; its samples fall back (see the module)."""
        if not await repo.delete_schema(
            self._db, project_id=project_id, name=name, now=self._clock.now()
        ):
            raise no_schema(name)

    async def label_studio_config(
        self, project_id: str, name: str, *, version: int | None = None
    ) -> str:
        """The Label Studio labeling config (XML) of a schema (`label_studio`)."""
        return labeling_config(self.parsed(await self.get(project_id, name, version=version)))

    async def require(self, project_id: str, name: str, *, param: str) -> None:
        """A 404 naming ``param`` unless the project has a live schema ``name``."""
        if await repo.get_schema(self._db, project_id=project_id, name=name) is None:
            raise NotFound(f"No task schema named {name!r}", param=param)

    def parsed(self, record: TaskSchemaRecord) -> TaskSchema:
        """The stored version as a `TaskSchema` (parsed once per version)."""
        key = (record.project_id, record.name, record.version)
        found = self._parsed.get(key)
        if found is None:
            found = TaskSchema.model_validate(record.definition)
            if len(self._parsed) >= _CACHE_SIZE:
                self._parsed.pop(next(iter(self._parsed)))
            self._parsed[key] = found
        return found

    # -- resolution -------------------------------------------------------------------------

    async def schema_for(
        self, project_id: str, dataset: DatasetRecord, sample_type: str | None
    ) -> TaskSchema:
        """The schema one sample of ``dataset`` follows (see the module)."""
        found = await self.schemas_for(project_id, dataset, [sample_type])
        return found.for_type(sample_type)

    async def schemas_for(
        self,
        project_id: str,
        dataset: DatasetRecord,
        sample_types: Iterable[str | None] | None = None,
    ) -> SchemaSet:
        """The schemas samples of ``dataset`` with these sample types follow (None: any
        type, i.e. every live schema of the project), read in one query."""
        names: set[str] | None = None
        if sample_types is not None:
            names = {t for t in sample_types if t is not None}
            if dataset.task_schema is not None:
                names.add(dataset.task_schema)
        records = await repo.latest_schemas(self._db, project_id=project_id, names=names)
        named = {record.name: self.parsed(record) for record in records}
        fallback = DEFAULT_SCHEMA
        if dataset.task_schema is not None:
            fallback = named.get(dataset.task_schema, DEFAULT_SCHEMA)
        return SchemaSet(named, fallback)


def _definition(schema: TaskSchema) -> dict[str, Any]:
    return checked(schema).model_dump(mode="json")


def no_schema(name: str) -> NotFound:
    return NotFound(f"No task schema named {name!r}", param="name")
