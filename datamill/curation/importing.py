"""Samples imported: from JSONL (all lines or none) and from a finished batch's answers, on
request or as the batch finalizes when its metadata names a dataset."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable

from datamill.curation.batch_imports import import_answers
from datamill.curation.imports import import_lines
from datamill.curation.lookups import DatasetLookups, no_dataset
from datamill.errors import ApiError, Conflict, NotFound
from datamill.protocol.batches import DATASET_METADATA_KEY, BatchStatus
from datamill.protocol.datasets import BatchImportReport, BatchImportRequest, ImportReport
from datamill.storage import batches as batch_repo
from datamill.storage import samples as sample_repo
from datamill.storage.records import BatchRecord
from datamill.storage.results import has_request_rows
from datamill.storage.schema import DEFAULT_PROJECT_ID

log = logging.getLogger("datamill.curation")

# Imports this large refresh the planner's statistics (`storage.samples.analyze_samples`).
ANALYZE_AFTER = 10_000


class Importing(DatasetLookups):
    async def import_jsonl(
        self,
        dataset_id: str,
        data: AsyncIterable[bytes],
        *,
        project_id: str = DEFAULT_PROJECT_ID,
    ) -> ImportReport:
        """Import samples from JSONL (`protocol.datasets.SampleLine` per line), all or
        nothing: one invalid line (a content its task schema refuses included) and an
        `InvalidLines` lists every problem, and nothing is stored. Exact duplicates (of a
        live sample, or of an earlier line) are skipped and reported."""
        # One transaction: the dataset stays as it was unless every line is good.
        dataset = await self._dataset(dataset_id, project_id)
        report = await import_lines(
            self._db,
            dataset_id,
            data,
            project_id=project_id,
            max_line_bytes=self._max_line_bytes,
            now=self._clock.now(),
            schemas=await self.schemas.schemas_for(project_id, dataset),
        )
        if report is None:
            raise no_dataset(dataset_id)
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
        dataset = await self._dataset(dataset_id, project_id)
        schemas = await self.schemas.schemas_for(project_id, dataset, [])
        report = await import_answers(
            self._db,
            dataset_id,
            batch,
            project_id=project_id,
            now=self._clock.now(),
            schema=schemas.fallback,
        )
        if report is None:
            raise no_dataset(dataset_id)
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
