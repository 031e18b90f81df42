"""Samples added, edited and restored to a past version, each change kept in their history
(`storage.sample_edits`)."""

from __future__ import annotations

from datamill.curation.lookups import DatasetLookups, duplicate, no_sample
from datamill.errors import Conflict, NotFound
from datamill.protocol.datasets import SampleCreate, SampleUpdate
from datamill.storage import sample_edits
from datamill.storage.sample_edits import EditOutcome, SampleVersion
from datamill.storage.samples import NewSample, SampleRecord
from datamill.storage.schema import DEFAULT_PROJECT_ID


class SampleEditing(DatasetLookups):
    async def add_sample(
        self,
        dataset_id: str,
        request: SampleCreate,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        changed_by: str | None = None,
    ) -> SampleRecord:
        """Add one sample (provenance ``source: api``), its content checked against its task
        schema; a 409 naming the live sample that has the same content."""
        dataset = await self._dataset(dataset_id, project_id)
        await self._check_content(project_id, dataset, request.sample_type, request.content)
        sample = NewSample(
            content=request.content,
            topic=request.topic,
            sample_type=request.sample_type,
            metadata=request.metadata,
            provenance={"source": "api"},
        )
        sample_id, holder = await sample_edits.add_sample(
            self._db, dataset_id, sample, changed_by=changed_by, now=self._clock.now()
        )
        if sample_id is None:
            raise duplicate("this content", holder)
        return await self._sample(dataset_id, sample_id, project_id)

    async def update_sample(
        self,
        dataset_id: str,
        sample_id: str,
        request: SampleUpdate,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        changed_by: str | None = None,
    ) -> SampleRecord:
        """Change the fields ``request`` sets, keeping the previous version. A new content
        or sample type is checked against the task schema the sample would then follow."""
        dataset, current = await self._dataset_and_sample(dataset_id, sample_id, project_id)
        values = {name: getattr(request, name) for name in request.model_fields_set}
        if "content" in values or "sample_type" in values:
            # What the sample would be, against the schema it would follow.
            sample_type = values.get("sample_type", current.sample_type)
            content = values.get("content", current.content)
            await self._check_content(project_id, dataset, sample_type, content)
        outcome = await sample_edits.edit_sample(
            self._db, dataset_id, sample_id, values, changed_by=changed_by, now=self._clock.now()
        )
        return self._changed(dataset_id, sample_id, outcome)

    async def sample_history(
        self, dataset_id: str, sample_id: str, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> list[SampleVersion]:
        """A sample's versions, oldest first."""
        await self._sample(dataset_id, sample_id, project_id)
        versions = await sample_edits.sample_versions(self._db, dataset_id, sample_id)
        if versions is None:
            raise no_sample(dataset_id, sample_id)
        return versions

    async def restore_sample_version(
        self,
        dataset_id: str,
        sample_id: str,
        version: int,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        changed_by: str | None = None,
    ) -> SampleRecord:
        """Bring back a past version (recorded as a new one)."""
        await self._sample(dataset_id, sample_id, project_id)
        outcome = await sample_edits.restore_version(
            self._db, dataset_id, sample_id, version, changed_by=changed_by, now=self._clock.now()
        )
        if outcome.no_version:
            raise NotFound(f"sample {sample_id} has no version {version}", param="version")
        return self._changed(dataset_id, sample_id, outcome)

    def _changed(self, dataset_id: str, sample_id: str, outcome: EditOutcome) -> SampleRecord:
        if outcome.record is None:
            raise no_sample(dataset_id, sample_id)
        if outcome.deleted:
            raise Conflict(
                f"sample {sample_id} is deleted: restore it before changing it",
                param="sample_id",
                code="sample_deleted",
            )
        if outcome.duplicate_of is not None:
            raise duplicate(f"sample {sample_id}'s new content", outcome.duplicate_of)
        return outcome.record
