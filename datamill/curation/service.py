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

import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from datamill.clock import Clock
from datamill.curation.batch_imports import import_answers
from datamill.curation.exports import (
    ExportOptions,
    check_options,
    encoded,
    encoded_splits,
    encoder_for,
)
from datamill.curation.formats.report import ExportReport
from datamill.curation.formats.splits import SplitAssigner
from datamill.curation.imports import import_lines
from datamill.errors import ApiError, Conflict, InvalidRequest, NotFound
from datamill.ids import new_dataset_id
from datamill.protocol.batches import DATASET_METADATA_KEY, BatchStatus
from datamill.protocol.datasets import (
    BatchImportReport,
    BatchImportRequest,
    DatasetCreate,
    DatasetUpdate,
    ExportFormat,
    ImportReport,
    SampleCreate,
    SampleFilterBody,
    SamplesChanged,
    SampleStatus,
    SampleUpdate,
    Visibility,
    check_plain_text,
)
from datamill.storage import batches as batch_repo
from datamill.storage import datasets as dataset_repo
from datamill.storage import sample_edits
from datamill.storage import samples as sample_repo
from datamill.storage.database import Database
from datamill.storage.datasets import DatasetNameTaken, DatasetRecord
from datamill.storage.records import BatchRecord
from datamill.storage.results import has_request_rows
from datamill.storage.sample_edits import EditOutcome, SampleVersion
from datamill.storage.samples import NewSample, SampleFilter, SampleRecord, SampleStats
from datamill.storage.schema import DEFAULT_PROJECT_ID
from datamill.storage.search import parse_search

log = logging.getLogger("datamill.curation")

# Samples per page of an export.
EXPORT_PAGE = 1000
# Imports this large refresh the planner's statistics (`storage.samples.analyze_samples`).
ANALYZE_AFTER = 10_000


@dataclass(frozen=True, slots=True)
class SampleQuery:
    """Which samples of a dataset a read or an export covers; every field given must match.
    ``q`` is the search syntax of `storage.search`."""

    topic: str | None = None
    sample_type: str | None = None
    status: SampleStatus | None = None
    model: str | None = None
    created_after: float | None = None
    created_before: float | None = None
    deleted: Visibility = Visibility.exclude
    q: str | None = None
    batch_id: str | None = None  # samples whose provenance names this batch ...
    job_id: str | None = None  # ... or this generation job


@dataclass(frozen=True, slots=True)
class DatasetView:
    record: DatasetRecord
    sample_count: int
    stats: SampleStats | None = None


class DatasetService:
    """Datasets and samples of a project (the default one until API keys arrive). Unknown
    or deleted datasets are 404s naming ``dataset_id``; unknown samples name ``sample_id``."""

    def __init__(self, database: Database, clock: Clock, *, max_line_bytes: int) -> None:
        self._db = database
        self._clock = clock
        self._max_line_bytes = max_line_bytes

    # -- datasets ---------------------------------------------------------------------------

    async def create(
        self, request: DatasetCreate, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> DatasetView:
        try:
            record = await dataset_repo.insert_dataset(
                self._db,
                dataset_id=new_dataset_id(),
                project_id=project_id,
                name=request.name,
                description=request.description,
                now=self._clock.now(),
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
        _plain(after, "after")
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

    async def resolve(
        self,
        reference: str,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        deleted: Visibility = Visibility.exclude,
    ) -> str:
        """The id of the dataset ``reference`` names: its id (``ds_...``) or its name (with
        ``deleted=only``: the newest deleted dataset of that name)."""
        _plain(reference, "dataset")
        if reference.startswith("ds_"):
            # By id, a dataset either way: restoring a live one is a no-op.
            by_id = Visibility.exclude if deleted is Visibility.exclude else Visibility.include
            record = await self._dataset(reference, project_id, by_id)
            return record.id
        found = await dataset_repo.find_dataset_by_name(
            self._db, reference, project_id=project_id, visibility=deleted
        )
        if found is None:
            gone = " deleted" if deleted is Visibility.only else ""
            raise NotFound(f"No{gone} dataset named {reference!r}", param="dataset")
        return found.id

    async def update(
        self, dataset_id: str, request: DatasetUpdate, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> DatasetView:
        """Change the fields ``request`` sets (``description: null`` clears it)."""
        values: dict[str, Any] = {name: getattr(request, name) for name in request.model_fields_set}
        try:
            record = await dataset_repo.update_dataset(
                self._db, dataset_id, project_id=project_id, values=values, now=self._clock.now()
            )
        except DatasetNameTaken as taken:
            raise _name_taken(taken) from None
        if record is None:
            raise _no_dataset(dataset_id)
        return await self.get(record.id, project_id=project_id)

    async def delete(self, dataset_id: str, *, project_id: str = DEFAULT_PROJECT_ID) -> None:
        """Hide a dataset and its samples (`restore` brings them back)."""
        done = await dataset_repo.delete_dataset(
            self._db, dataset_id, project_id=project_id, now=self._clock.now()
        )
        if not done:
            raise _no_dataset(dataset_id)

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
        _plain(after, "after")
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
            raise _no_sample(dataset_id, sample_id)
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

    async def add_sample(
        self,
        dataset_id: str,
        request: SampleCreate,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        changed_by: str | None = None,
    ) -> SampleRecord:
        """Add one sample (provenance ``source: api``); a 409 naming the live sample that
        has the same content."""
        await self._dataset(dataset_id, project_id)
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
            raise _duplicate("this content", holder)
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
        """Change the fields ``request`` sets, keeping the previous version."""
        await self._sample(dataset_id, sample_id, project_id)
        values = {name: getattr(request, name) for name in request.model_fields_set}
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
            raise _no_sample(dataset_id, sample_id)
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
            raise _no_sample(dataset_id, sample_id)
        if outcome.deleted:
            raise Conflict(
                f"sample {sample_id} is deleted: restore it before changing it",
                param="sample_id",
                code="sample_deleted",
            )
        if outcome.duplicate_of is not None:
            raise _duplicate(f"sample {sample_id}'s new content", outcome.duplicate_of)
        return outcome.record

    # -- import and export ------------------------------------------------------------------

    async def import_jsonl(
        self,
        dataset_id: str,
        data: AsyncIterable[bytes],
        *,
        project_id: str = DEFAULT_PROJECT_ID,
    ) -> ImportReport:
        """Import samples from JSONL (`protocol.datasets.SampleLine` per line), all or
        nothing: one invalid line and an `InvalidLines` lists every problem, and nothing is
        stored. Exact duplicates (of a live sample, or of an earlier line) are skipped and
        reported."""
        # One transaction: the dataset stays as it was unless every line is good.
        report = None
        if _storable(dataset_id):
            report = await import_lines(
                self._db,
                dataset_id,
                data,
                project_id=project_id,
                max_line_bytes=self._max_line_bytes,
                now=self._clock.now(),
            )
        if report is None:
            raise _no_dataset(dataset_id)
        if report.imported >= ANALYZE_AFTER:
            await sample_repo.analyze_samples(self._db)
        return report

    async def import_batch(
        self,
        dataset_id: str,
        request: BatchImportRequest,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
    ) -> BatchImportReport:
        """Store a finished batch's succeeded answers as samples (`curation.batch_imports`);
        importing again adds nothing. The batch must be the project's, and still have its
        request rows (retention prunes them)."""
        await self._dataset(dataset_id, project_id)
        batch = await batch_repo.get_batch(self._db, request.batch_id, project_id=project_id)
        if batch is None:
            raise NotFound(f"No such batch: {request.batch_id}", param="batch_id")
        if not BatchStatus(batch.status).terminal:
            raise Conflict(
                f"batch {batch.id} is {batch.status}: import it once it has finished",
                param="batch_id",
                code="batch_not_finished",
            )
        return await self._import_answers(dataset_id, batch, project_id)

    async def _import_answers(
        self, dataset_id: str, batch: BatchRecord, project_id: str
    ) -> BatchImportReport:
        if batch.completed_count and not await has_request_rows(self._db, batch.id):
            raise Conflict(
                f"batch {batch.id}'s requests were removed by retention; import its output "
                "file as JSONL instead",
                param="batch_id",
                code="batch_results_pruned",
            )
        report = await import_answers(
            self._db, dataset_id, batch, project_id=project_id, now=self._clock.now()
        )
        if report is None:
            raise _no_dataset(dataset_id)
        if report.imported >= ANALYZE_AFTER:
            await sample_repo.analyze_samples(self._db)
        return report

    async def import_finished_batch(self, batch: BatchRecord) -> BatchImportReport | None:
        """The automatic import of a batch whose metadata names a dataset of its project (by
        name or id), run as it finalizes (its files written, its final status not yet);
        None when it names none. A dataset that is not there is logged, not raised: the
        batch finishes either way."""
        reference = (batch.metadata or {}).get(DATASET_METADATA_KEY)
        if not reference:
            return None
        try:
            dataset_id = await self.resolve(reference, project_id=batch.project_id)
            report = await self._import_answers(dataset_id, batch, batch.project_id)
        except ApiError as exc:
            log.warning(
                "batch %s names dataset %r in its metadata, but was not imported: %s",
                batch.id,
                reference,
                exc.message,
            )
            return None
        log.info(
            "batch %s: %d samples imported into dataset %s (%d duplicates)",
            batch.id,
            report.imported,
            dataset_id,
            report.duplicates,
        )
        return report

    async def export(
        self,
        dataset_id: str,
        query: SampleQuery,
        export_format: ExportFormat,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        on_page: Callable[[int], None] | None = None,
        options: ExportOptions | None = None,
        report: ExportReport | None = None,
    ) -> tuple[DatasetRecord, AsyncIterator[bytes]]:
        """The dataset, and its matching samples in creation order in ``export_format``
        (`curation.exports`), streamed. Everything that can fail is checked before the first
        byte (the format's library included). ``on_page`` hears how many samples each page
        read (progress); ``report`` is filled as the stream goes (left out, warnings)."""
        where = self._filter(query)
        options = options or ExportOptions()
        check_options(options)
        report = report if report is not None else ExportReport()
        record = await self._dataset(dataset_id, project_id)
        encoder = encoder_for(export_format, options, report)  # opens Parquet's writer
        pages = self._pages(dataset_id, where, on_page)
        return record, encoded(pages, encoder, options, report)

    async def export_splits(
        self,
        dataset_id: str,
        query: SampleQuery,
        export_format: ExportFormat,
        options: ExportOptions,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        on_page: Callable[[int], None] | None = None,
    ) -> tuple[DatasetRecord, dict[str, ExportReport], AsyncIterator[tuple[str, bytes]]]:
        """`export` of every split of ``options.splits`` in one pass: the dataset, a report
        per split, and the chunks, each with its split's name."""
        if options.splits is None:
            raise InvalidRequest("an export by split needs `splits`", param="splits")
        where = self._filter(query)
        reports = {name: ExportReport() for name in options.splits.names}
        record = await self._dataset(dataset_id, project_id)
        encoders = {
            name: encoder_for(export_format, options, report) for name, report in reports.items()
        }
        pages = self._pages(dataset_id, where, on_page)
        assigner = SplitAssigner(options.splits, options.seed)
        return record, reports, encoded_splits(pages, encoders, assigner, reports)

    async def _pages(
        self, dataset_id: str, where: SampleFilter, on_page: Callable[[int], None] | None
    ) -> AsyncIterator[list[SampleRecord]]:
        # A short read per page: a long export holds no snapshot and no connection.
        after_seq: int | None = None
        while True:
            page, more = await sample_repo.list_samples(
                self._db, dataset_id, where, after_seq=after_seq, limit=EXPORT_PAGE, order="asc"
            )
            if on_page is not None:
                on_page(len(page))
            yield page
            if not more:
                return
            after_seq = page[-1].seq

    # -- lookups ----------------------------------------------------------------------------

    async def _dataset(
        self,
        dataset_id: str,
        project_id: str,
        deleted: Visibility = Visibility.exclude,
    ) -> DatasetRecord:
        record = None
        if _storable(dataset_id):
            record = await dataset_repo.get_dataset(
                self._db, dataset_id, project_id=project_id, visibility=deleted
            )
        if record is None:
            raise _no_dataset(dataset_id)
        return record

    async def _sample(self, dataset_id: str, sample_id: str, project_id: str) -> SampleRecord:
        await self._dataset(dataset_id, project_id)
        record = None
        if _storable(sample_id):
            record = await sample_repo.get_sample(self._db, dataset_id, sample_id)
        if record is None:
            raise _no_sample(dataset_id, sample_id)
        return record

    def _filter(self, query: SampleQuery) -> SampleFilter:
        for name in ("topic", "sample_type", "model", "q", "batch_id", "job_id"):
            _plain(getattr(query, name), name)
        return SampleFilter(
            topic=query.topic,
            sample_type=query.sample_type,
            status=query.status.value if query.status is not None else None,
            model=query.model,
            created_after=query.created_after,
            created_before=query.created_before,
            visibility=query.deleted,
            search=parse_search(query.q) if query.q is not None else None,
            batch_id=query.batch_id,
            job_id=query.job_id,
        )

    def _body_filter(self, body: SampleFilterBody) -> SampleFilter:
        given = body.model_fields_set - {"all"}
        if not given and not body.all:
            raise InvalidRequest(
                "name the samples: ids or a filter (topic, sample_type, status, model, "
                "created_after, created_before, q, batch_id, job_id), or all: true for every "
                "sample",
                param="all",
                code="missing_required_parameter",
            )
        where = self._filter(
            SampleQuery(
                topic=body.topic,
                sample_type=body.sample_type,
                status=body.status,
                model=body.model,
                created_after=body.created_after,
                created_before=body.created_before,
                q=body.q,
                batch_id=body.batch_id,
                job_id=body.job_id,
            )
        )
        return replace(where, ids=tuple(body.ids or ()))


def _storable(value: str) -> bool:
    """Whether a text column can hold ``value`` (an id that cannot is no one's)."""
    try:
        check_plain_text(value)
    except ValueError:
        return False
    return True


def _plain(value: str | None, param: str) -> None:
    if value is not None and not _storable(value):
        raise InvalidRequest(
            f"{param} has a NUL character or a lone surrogate", param=param, code="invalid_value"
        )


def _no_dataset(dataset_id: str) -> NotFound:
    return NotFound(f"No such dataset: {dataset_id}", param="dataset_id")


def _no_sample(dataset_id: str, sample_id: str) -> NotFound:
    return NotFound(f"No sample {sample_id} in dataset {dataset_id}", param="sample_id")


def _duplicate(what: str, holder: str | None) -> Conflict:
    return Conflict(
        f"{what} is the content of the live sample {holder} of this dataset",
        param="content",
        code="duplicate_sample",
    )


def _name_taken(taken: DatasetNameTaken, *, param: str = "name") -> Conflict:
    return Conflict(
        f"a dataset named {taken.name!r} exists already; choose another name",
        param=param,
        code="dataset_name_taken",
    )
