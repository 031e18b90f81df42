"""A dataset's samples exported in a format (`curation.exports`), streamed a page at a time,
whole or by seeded split."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from datamill.curation.exports import (
    ExportOptions,
    check_options,
    encoded,
    encoded_splits,
    encoder_for,
)
from datamill.curation.formats.report import ExportReport
from datamill.curation.formats.splits import SplitAssigner
from datamill.curation.lookups import DatasetLookups, SampleQuery
from datamill.errors import InvalidRequest
from datamill.protocol.datasets import ExportFormat
from datamill.storage import samples as sample_repo
from datamill.storage.datasets import DatasetRecord
from datamill.storage.samples import SampleFilter, SampleRecord
from datamill.storage.schema import DEFAULT_PROJECT_ID

# Samples per page of an export.
EXPORT_PAGE = 1000


class Exporting(DatasetLookups):
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
