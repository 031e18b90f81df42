"""A dataset's samples exported in a format (`curation.exports`), streamed a page at a time,
whole or by seeded split."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any, TypeVar

from datamill.curation.exports import (
    ExportOptions,
    check_options,
    encoded,
    encoded_splits,
    encoder_for,
    export_fields,
)
from datamill.curation.formats.report import ExportReport
from datamill.curation.formats.splits import SplitAssigner
from datamill.curation.lookups import DatasetLookups, SampleQuery
from datamill.errors import InvalidRequest
from datamill.events.topics import Topic
from datamill.ids import new_export_id
from datamill.protocol.datasets import ExportCounts, ExportEvent, ExportFormat, Visibility
from datamill.storage import samples as sample_repo
from datamill.storage.datasets import DatasetRecord
from datamill.storage.samples import SampleFilter, SampleRecord
from datamill.storage.schema import DEFAULT_PROJECT_ID
from datamill.task_schemas.service import SchemaSet

# Samples per page of an export.
EXPORT_PAGE = 1000

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Export:
    """What an export's event says, its reports read once the stream is done."""

    record: DatasetRecord
    project_id: str
    export_format: ExportFormat
    query: SampleQuery
    options: ExportOptions
    reports: Mapping[str | None, ExportReport]  # by split; None: the export's one report

    def event(self) -> ExportEvent:
        counts = {
            name: ExportCounts(
                samples=report.samples,
                exported=report.exported,
                left_out=report.left_out_count,
            )
            for name, report in self.reports.items()
        }
        filters = {
            name: _plain(value)
            for name, value in asdict(self.query).items()
            if value not in (None, ()) and not (name == "deleted" and value is Visibility.exclude)
        }
        splits = self.options.splits is not None
        return ExportEvent(
            id=new_export_id(),
            dataset_id=self.record.id,
            format=self.export_format.value,
            filters=filters,
            split=self.options.split,
            seed=self.options.seed if splits else None,
            counts=ExportCounts(
                samples=sum(c.samples for c in counts.values()),
                exported=sum(c.exported for c in counts.values()),
                left_out=sum(c.left_out for c in counts.values()),
            ),
            split_counts={str(k): v for k, v in counts.items()} if None not in counts else None,
        )


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
        announce: bool = True,
    ) -> tuple[DatasetRecord, AsyncIterator[bytes]]:
        """The dataset, and its matching samples in creation order in ``export_format``
        (`curation.exports`), streamed, each sample mapped by the task schema it follows.
        Everything that can fail is checked before the first byte (the format's library
        included). ``on_page`` hears how many samples each page read (progress); ``report``
        is filled as the stream goes (left out, warnings). Once the stream is drained, an
        `export` event says so (``announce``; a check is no export)."""
        where = self._filter(query)
        options = options or ExportOptions()
        check_options(options)
        report = report if report is not None else ExportReport()
        record = await self._dataset(dataset_id, project_id)
        schemas, fields = await self._schemas_of(record, project_id)
        # Opens Parquet's writer.
        encoder = encoder_for(export_format, options, report, schemas, fields)
        pages = self._pages(dataset_id, where, on_page)
        chunks = encoded(pages, encoder, options, report)
        if not announce:
            return record, chunks
        event = _Export(record, project_id, export_format, query, options, {None: report})
        return record, self._announced(chunks, event)

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
        schemas, fields = await self._schemas_of(record, project_id)
        encoders = {
            name: encoder_for(export_format, options, report, schemas, fields)
            for name, report in reports.items()
        }
        pages = self._pages(dataset_id, where, on_page)
        assigner = SplitAssigner(options.splits, options.seed)
        chunks = encoded_splits(pages, encoders, assigner, reports)
        by_split: dict[str | None, ExportReport] = {}
        by_split.update(reports)
        event = _Export(record, project_id, export_format, query, options, by_split)
        return record, reports, self._announced(chunks, event)

    async def _announced(self, chunks: AsyncIterator[T], export: _Export) -> AsyncIterator[T]:
        """``chunks``, then the `export` event (not when the reader stops early)."""
        async for chunk in chunks:
            yield chunk
        if self._events is not None:
            event = export.event()
            self._events.publish(
                Topic.export, event.model_dump(mode="json"), project_id=export.project_id
            )

    async def _schemas_of(
        self, record: DatasetRecord, project_id: str
    ) -> tuple[SchemaSet, list[str]]:
        """The task schemas the dataset's samples follow (read once, not per sample), and
        the content fields they export as columns of their own."""
        types = await sample_repo.sample_types(self._db, record.id)
        schemas = await self.schemas.schemas_for(project_id, record, types)
        return schemas, export_fields(schemas, types)

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


def _plain(value: Any) -> Any:
    """A filter's value as JSON has it: an enum's value, a tuple of them as a list."""
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value.value if isinstance(value, Enum) else value
