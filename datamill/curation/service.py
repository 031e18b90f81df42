"""DatasetService: the one way to create, read, change, search, import and export datasets
and their samples. The HTTP API and the CLI call it; generation jobs insert samples through
`storage.generation.record_outcomes`. Every change is one repository call (`storage.datasets`,
`storage.samples`), which owns its transaction.

Guarantees: nothing is ever removed (deleting sets ``deleted_at``; restoring clears it); a
dataset never holds two live samples with the same normalized content; an import is one
transaction (every line valid and stored, duplicates reported and skipped, or nothing
stored); bad input is an `ApiError` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from datamill.curation.dedup import Deduplicating
from datamill.curation.editing import SampleEditing
from datamill.curation.exporting import Exporting
from datamill.curation.importing import Importing
from datamill.curation.lookups import (
    SampleQuery,
    no_dataset,
    no_sample,
    plain_text,
)
from datamill.errors import Conflict
from datamill.ids import new_dataset_id
from datamill.protocol.datasets import (
    DatasetCreate,
    DatasetUpdate,
    SampleFilterBody,
    SamplesChanged,
    Visibility,
)
from datamill.storage import datasets as dataset_repo
from datamill.storage import samples as sample_repo
from datamill.storage.datasets import DatasetNameTaken, DatasetRecord
from datamill.storage.samples import SampleFilter, SampleRecord, SampleStats
from datamill.storage.schema import DEFAULT_PROJECT_ID


@dataclass(frozen=True, slots=True)
class DatasetView:
    record: DatasetRecord
    sample_count: int
    stats: SampleStats | None = None


class DatasetService(SampleEditing, Importing, Exporting, Deduplicating):
    """Datasets and samples of a project. Unknown or deleted datasets are 404s naming
    ``dataset_id``; unknown samples name ``sample_id``. Adding and editing samples, imports
    and exports are in `editing`, `importing` and `exporting`, near-duplicate removal in
    `dedup`; lookups in `lookups`."""

    # -- datasets ---------------------------------------------------------------------------

    async def create(
        self, request: DatasetCreate, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> DatasetView:
        if request.task_schema is not None:
            await self.schemas.require(project_id, request.task_schema, param="task_schema")
        try:
            record = await dataset_repo.insert_dataset(
                self._db,
                dataset_id=new_dataset_id(),
                project_id=project_id,
                name=request.name,
                description=request.description,
                now=self._clock.now(),
                task_schema=request.task_schema,
            )
        except DatasetNameTaken as taken:
            raise _name_taken(taken) from None
        return DatasetView(record, 0)

    async def list_datasets(
        self,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        after: str | None = None,
        limit: int = 20,
        deleted: Visibility = Visibility.exclude,
    ) -> tuple[list[DatasetView], bool]:
        """A page of datasets, newest first, with their live sample counts."""
        plain_text(after, "after")
        records, has_more = await dataset_repo.list_datasets(
            self._db, project_id=project_id, after=after, limit=limit, visibility=deleted
        )
        counts = await sample_repo.count_live_samples(self._db, [r.id for r in records])
        return [DatasetView(r, counts.get(r.id, 0)) for r in records], has_more

    async def get(
        self,
        dataset_id: str,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        deleted: Visibility = Visibility.exclude,
    ) -> DatasetView:
        """A dataset with its stats. ``deleted=include`` finds a deleted one too."""
        record = await self._dataset(dataset_id, project_id, deleted)
        stats = await sample_repo.sample_stats(self._db, record.id)
        return DatasetView(record, stats.samples, stats)

    async def update(
        self, dataset_id: str, request: DatasetUpdate, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> DatasetView:
        """Change the fields ``request`` sets (``description: null`` and ``task_schema:
        null`` clear them); a default task schema must be a live one of the project."""
        values: dict[str, Any] = {name: getattr(request, name) for name in request.model_fields_set}
        if values.get("task_schema") is not None:
            await self.schemas.require(project_id, values["task_schema"], param="task_schema")
        try:
            record = await dataset_repo.update_dataset(
                self._db, dataset_id, project_id=project_id, values=values, now=self._clock.now()
            )
        except DatasetNameTaken as taken:
            raise _name_taken(taken) from None
        if record is None:
            raise no_dataset(dataset_id)
        return await self.get(record.id, project_id=project_id)

    async def delete(self, dataset_id: str, *, project_id: str = DEFAULT_PROJECT_ID) -> None:
        """Hide a dataset and its samples (`restore` brings them back)."""
        done = await dataset_repo.delete_dataset(
            self._db, dataset_id, project_id=project_id, now=self._clock.now()
        )
        if not done:
            raise no_dataset(dataset_id)

    async def restore(
        self, dataset_id: str, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> DatasetView:
        """Bring a deleted dataset back (a live one is left as it is); a 409 when a live
        dataset has taken its name meanwhile."""
        # A dataset is never removed: once found, restoring it cannot miss it.
        await self._dataset(dataset_id, project_id, Visibility.include)
        try:
            await dataset_repo.restore_dataset(
                self._db, dataset_id, project_id=project_id, now=self._clock.now()
            )
        except DatasetNameTaken as taken:
            raise _name_taken(taken, param="dataset_id") from None
        return await self.get(dataset_id, project_id=project_id)

    # -- samples ----------------------------------------------------------------------------

    async def list_samples(
        self,
        dataset_id: str,
        query: SampleQuery,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        after: str | None = None,
        limit: int = 100,
        order: Literal["asc", "desc"] = "desc",
    ) -> tuple[list[SampleRecord], bool]:
        where = self._filter(query)
        plain_text(after, "after")
        await self._dataset(dataset_id, project_id)
        return await sample_repo.list_samples(
            self._db, dataset_id, where, after=after, limit=limit, order=order
        )

    async def random_samples(
        self,
        dataset_id: str,
        query: SampleQuery,
        count: int,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
    ) -> list[SampleRecord]:
        where = self._filter(query)
        await self._dataset(dataset_id, project_id)
        return await sample_repo.random_samples(self._db, dataset_id, where, count)

    async def count_samples(
        self, dataset_id: str, query: SampleQuery, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> int:
        where = self._filter(query)
        await self._dataset(dataset_id, project_id)
        return await sample_repo.count_samples(self._db, dataset_id, where)

    async def get_sample(
        self, dataset_id: str, sample_id: str, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> SampleRecord:
        """A sample, deleted or not (``deleted_at`` says)."""
        return await self._sample(dataset_id, sample_id, project_id)

    async def delete_sample(
        self, dataset_id: str, sample_id: str, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> SampleRecord:
        """Delete one sample; deleting a deleted one changes nothing."""
        await self._sample(dataset_id, sample_id, project_id)
        where = SampleFilter(ids=(sample_id,))
        await sample_repo.delete_samples(self._db, dataset_id, where, now=self._clock.now())
        return await self._sample(dataset_id, sample_id, project_id)

    async def restore_sample(
        self, dataset_id: str, sample_id: str, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> SampleRecord:
        """Restore one sample; a 409 when a live sample of the dataset has its content."""
        await self._sample(dataset_id, sample_id, project_id)
        restore = await sample_repo.restore_sample(self._db, dataset_id, sample_id)
        if restore is None:
            raise no_sample(dataset_id, sample_id)
        if restore.record.deleted_at is not None:
            raise Conflict(
                f"sample {sample_id} has the same content as the live sample "
                f"{restore.live_duplicate}; delete that one first",
                param="sample_id",
                code="duplicate_sample",
            )
        return restore.record

    async def delete_samples(
        self, dataset_id: str, body: SampleFilterBody, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> SamplesChanged:
        """Delete the live samples ``body`` selects."""
        where = self._body_filter(body)
        await self._dataset(dataset_id, project_id)
        changed = await sample_repo.delete_samples(
            self._db, dataset_id, where, now=self._clock.now()
        )
        return SamplesChanged(changed=changed)

    async def restore_samples(
        self, dataset_id: str, body: SampleFilterBody, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> SamplesChanged:
        """Restore the deleted samples ``body`` selects, but those whose content is live."""
        where = self._body_filter(body)
        await self._dataset(dataset_id, project_id)
        outcome = await sample_repo.restore_samples(self._db, dataset_id, where)
        return SamplesChanged(changed=outcome.restored, skipped=outcome.skipped)


def _name_taken(taken: DatasetNameTaken, *, param: str = "name") -> Conflict:
    return Conflict(
        f"a dataset named {taken.name!r} exists already; choose another name",
        param=param,
        code="dataset_name_taken",
    )
