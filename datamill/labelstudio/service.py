"""LabelStudioService: a dataset's labeling config, its samples exported as Label Studio
tasks, and Label Studio's annotation export imported back as reviews.

The dataset's task schema comes from ``schema_for`` (the registry: the dataset's
``task_schema``, else the default schema); imported reviews go to a `ReviewSink`
(`reviews.ServiceReviews`: the review workflow).

Import guarantees: nothing is added to the dataset (annotations find their sample by
``data.datamill_sample_id``; a task of another dataset is reported, not applied); at most one
review per sample and reviewer (the latest annotation of a reviewer counts, their earlier
ones are ``superseded``); an annotation imported before with the same content is
``unchanged``, a changed one replaces that reviewer's review; a bad task or annotation is
reported with what is wrong, and the rest is applied.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from datamill.curation.exports import ExportOptions
from datamill.curation.formats.report import ExportReport
from datamill.curation.lookups import SampleQuery, storable
from datamill.curation.service import DatasetService
from datamill.errors import ApiError, InvalidRequest, PayloadTooLarge
from datamill.labelstudio import annotations as parsing
from datamill.labelstudio.annotations import Annotation, Problem, Task
from datamill.labelstudio.reviews import ImportedReview, Outcome, ReviewSink, ServiceReviews
from datamill.labelstudio.tasks import TaskEncoder, TaskLayout, task_layout
from datamill.protocol.datasets import ExportFormat, Visibility
from datamill.protocol.labelstudio import (
    MAX_PROBLEMS,
    LabelStudioImportReport,
    LabelStudioProblem,
)
from datamill.storage.datasets import DatasetRecord
from datamill.storage.samples import SampleRecord
from datamill.storage.schema import DEFAULT_PROJECT_ID
from datamill.task_schemas.label_studio import labeling_config
from datamill.task_schemas.label_studio_names import NameConflict

if TYPE_CHECKING:
    from datamill.runtime import Runtime
from datamill.protocol.task_schema_format import DEFAULT_SCHEMA, TaskSchema

SchemaFor = Callable[[DatasetRecord], Awaitable[TaskSchema]]
# Samples read for the top-level fields a config shows when the schema names none.
FIELD_SCAN = 1000
# Samples an import looks up per query.
LOOKUP_CHUNK = 500


async def default_schema(dataset: DatasetRecord) -> TaskSchema:
    """`DEFAULT_SCHEMA` for every dataset (the API and the CLI use the registry's)."""
    return DEFAULT_SCHEMA


class LabelStudioService:
    def __init__(
        self,
        datasets: DatasetService,
        *,
        max_file_bytes: int,
        reviews: ReviewSink,
        schema_for: SchemaFor = default_schema,
    ) -> None:
        self._datasets = datasets
        self._max_file_bytes = max_file_bytes
        self._reviews = reviews
        self._schema_for = schema_for

    async def layout(
        self, dataset_id: str, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> tuple[DatasetRecord, TaskLayout]:
        """The dataset and the layout of its tasks; a 400 naming ``task_schema`` when the
        schema's Label Studio names collide."""
        record = await self._datasets.dataset(dataset_id, project_id=project_id)
        schema = await self._schema_for(record)
        top_level: list[str] = []
        if not schema.display.fields and not isinstance(schema.content.get("properties"), dict):
            top_level = await self._top_level(dataset_id, project_id)
        try:
            return record, task_layout(schema, top_level)
        except NameConflict as conflict:
            raise InvalidRequest(str(conflict), param="task_schema") from None

    async def _top_level(self, dataset_id: str, project_id: str) -> list[str]:
        page, _ = await self._datasets.list_samples(
            dataset_id, SampleQuery(), project_id=project_id, limit=FIELD_SCAN, order="asc"
        )
        seen: dict[str, None] = {}
        for record in page:
            for name in record.content:
                seen.setdefault(name, None)
        return list(seen)

    async def config(self, dataset_id: str, *, project_id: str = DEFAULT_PROJECT_ID) -> str:
        """The labeling config of the dataset's tasks (`config`)."""
        _, found = await self.layout(dataset_id, project_id=project_id)
        return labeling_config(found.schema, [f.path for f in found.layout.fields])

    def _options(self, found: TaskLayout, options: ExportOptions | None) -> ExportOptions:
        def encoder(report: ExportReport) -> TaskEncoder:
            return TaskEncoder(found, report)

        return replace(options or ExportOptions(), encoder=encoder)

    async def export(
        self,
        dataset_id: str,
        query: SampleQuery,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        options: ExportOptions | None = None,
        on_page: Callable[[int], None] | None = None,
        report: ExportReport | None = None,
    ) -> tuple[DatasetRecord, AsyncIterator[bytes]]:
        """The matching samples as a JSON array of tasks (`tasks`), streamed."""
        _, found = await self.layout(dataset_id, project_id=project_id)
        return await self._datasets.export(
            dataset_id,
            query,
            ExportFormat.label_studio,
            project_id=project_id,
            on_page=on_page,
            options=self._options(found, options),
            report=report,
        )

    async def export_splits(
        self,
        dataset_id: str,
        query: SampleQuery,
        options: ExportOptions,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        on_page: Callable[[int], None] | None = None,
    ) -> tuple[DatasetRecord, dict[str, ExportReport], AsyncIterator[tuple[str, bytes]]]:
        """`export` of each split of ``options.splits`` in one pass."""
        _, found = await self.layout(dataset_id, project_id=project_id)
        return await self._datasets.export_splits(
            dataset_id,
            query,
            ExportFormat.label_studio,
            self._options(found, options),
            project_id=project_id,
            on_page=on_page,
        )

    async def import_annotations(
        self,
        dataset_id: str,
        body: AsyncIterable[bytes],
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        on_task: Callable[[int, int], None] | None = None,
    ) -> LabelStudioImportReport:
        """Apply Label Studio's export ``body`` (JSON or JSON_MIN) to the dataset's samples
        (see the module). ``on_task`` hears (tasks done, tasks) as the import goes."""
        _, found = await self.layout(dataset_id, project_id=project_id)
        data = await self._read(body)
        controls = parsing.control_names(found.schema, found.layout)
        file_format, tasks, problems = parsing.parse_export(data, controls)
        run = _Run(dataset_id, project_id, found, tasks, problems)
        samples = await self._samples(run)
        latest = _latest(run, samples)
        # Each sample as it is now: one written to is read again before its next review
        # (several tasks may show one sample), and only then.
        current = {sample.id: sample for sample in samples.values()}
        stale: set[str] = set()
        for done, task in enumerate(tasks, start=1):
            counting = [a for a in task.annotations if task.index in samples]
            for annotation in counting:
                sample_id = samples[task.index].id
                if latest.get((sample_id, annotation.reviewer)) is not annotation:
                    continue
                if sample_id in stale:
                    current[sample_id] = await self._fresh(run, current[sample_id])
                    stale.discard(sample_id)
                if await self._apply(run, task, current[sample_id], annotation):
                    stale.add(sample_id)
            if on_task is not None:
                on_task(done, len(tasks))
        return run.report(file_format)

    async def _read(self, body: AsyncIterable[bytes]) -> bytes:
        data = bytearray()
        async for chunk in body:
            data += chunk
            if len(data) > self._max_file_bytes:
                raise PayloadTooLarge(
                    f"the file is larger than {self._max_file_bytes} bytes "
                    "(DATAMILL_MAX_FILE_BYTES)",
                    param="file",
                    code="file_too_large",
                )
        return bytes(data)

    async def _samples(self, run: _Run) -> dict[int, SampleRecord]:
        """Each task's live sample of the dataset, read a chunk at a time; the tasks without
        one are reported."""
        wanted: dict[int, str] = {}
        for task in run.tasks:
            sample_id, dataset_id = task.sample_id, task.dataset_id
            if not isinstance(sample_id, str) or not sample_id or not storable(sample_id):
                run.problem(
                    task, "the task names no datamill sample", param="data.datamill_sample_id"
                )
            elif dataset_id is not None and dataset_id != run.dataset_id:
                run.problem(
                    task,
                    f"the task is of dataset {dataset_id!r}, not {run.dataset_id}: not applied",
                    param="data.datamill_dataset_id",
                )
            else:
                wanted[task.index] = sample_id
        ids = sorted(set(wanted.values()))
        records: dict[str, SampleRecord] = {}
        for start in range(0, len(ids), LOOKUP_CHUNK):
            chunk = tuple(ids[start : start + LOOKUP_CHUNK])
            query = SampleQuery(ids=chunk, deleted=Visibility.include)
            page, _ = await self._datasets.list_samples(
                run.dataset_id, query, project_id=run.project_id, limit=len(chunk)
            )
            records.update((record.id, record) for record in page)
        found: dict[int, SampleRecord] = {}
        for task in run.tasks:
            if task.index not in wanted:
                continue
            sample = records.get(wanted[task.index])
            if sample is None:
                run.problem(
                    task,
                    f"dataset {run.dataset_id} has no sample {wanted[task.index]}",
                    param="data.datamill_sample_id",
                )
            elif sample.deleted_at is not None:
                run.problem(task, f"sample {sample.id} is deleted: restore it first")
            else:
                found[task.index] = sample
        return found

    async def _apply(
        self, run: _Run, task: Task, sample: SampleRecord, annotation: Annotation
    ) -> bool:
        """Apply one annotation; whether the sample was written to."""
        assert annotation.reviewer is not None
        schema, layout = run.layout.schema, run.layout.layout
        read = parsing.read_answers(schema, layout, annotation)
        written = False
        if isinstance(read, str):
            run.problem(task, read, annotation=annotation)
        else:
            fields = {f.key: f for f in layout.fields}
            content, refused = parsing.edited_content(sample.content, read.edits, fields, task.data)
            for why in refused:
                run.problem(task, why, annotation=annotation)
            review = ImportedReview(
                reviewer=annotation.reviewer,
                answers=read.answers,
                reason=read.reason,
                content=content,
                key=annotation.key,
                annotation_id=annotation.id,
            )
            try:
                outcome = await self._reviews.submit_review(
                    run.dataset_id, sample, review, project_id=run.project_id
                )
            except ApiError as refused_review:
                run.problem(task, refused_review.message, annotation=annotation)
            else:
                run.counts[outcome.value] += 1
                if outcome is not Outcome.unchanged and content is not None:
                    run.counts["edits"] += 1
                written = outcome is not Outcome.unchanged
        if annotation.ground_truth:
            gold = parsing.read_answers(schema, run.layout.layout, annotation, need_reason=False)
            if isinstance(gold, parsing.Answers):
                sample = await self._fresh(run, sample) if written else sample
                if await self._reviews.set_gold(
                    run.dataset_id,
                    sample,
                    gold.answers,
                    set_by=annotation.reviewer,
                    project_id=run.project_id,
                ):
                    run.counts["gold"] += 1
                    written = True
        return written

    async def _fresh(self, run: _Run, sample: SampleRecord) -> SampleRecord:
        return await self._datasets.get_sample(run.dataset_id, sample.id, project_id=run.project_id)


@dataclass(slots=True)
class _Run:
    """One import's input and tallies."""

    dataset_id: str
    project_id: str
    layout: TaskLayout
    tasks: list[Task]
    parse_problems: list[Problem]
    problems: list[LabelStudioProblem] = field(default_factory=list)
    errors: int = 0
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("created", "replaced", "unchanged", "cancelled", "superseded", "edits", "gold"), 0
        )
    )

    def __post_init__(self) -> None:
        for problem in self.parse_problems:
            self._add(
                LabelStudioProblem(
                    task=problem.task,
                    annotation_id=problem.annotation_id,
                    param=problem.param,
                    message=problem.message,
                )
            )

    def _add(self, problem: LabelStudioProblem) -> None:
        self.errors += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    def problem(
        self,
        task: Task,
        message: str,
        *,
        param: str | None = None,
        annotation: Annotation | None = None,
    ) -> None:
        sample_id = task.sample_id
        self._add(
            LabelStudioProblem(
                task=task.index,
                task_id=task.id,
                sample_id=sample_id if isinstance(sample_id, str) else None,
                annotation_id=None if annotation is None else annotation.id,
                param=param,
                message=message,
            )
        )

    def report(self, file_format: parsing.Format) -> LabelStudioImportReport:
        counts = self.counts
        return LabelStudioImportReport(
            dataset_id=self.dataset_id,
            format=file_format,
            tasks=len(self.tasks),
            annotations=sum(len(t.annotations) for t in self.tasks),
            applied=counts["created"] + counts["replaced"],
            created=counts["created"],
            replaced=counts["replaced"],
            unchanged=counts["unchanged"],
            cancelled=counts["cancelled"],
            superseded=counts["superseded"],
            edits=counts["edits"],
            gold=counts["gold"],
            errors=self.errors,
            problems=self.problems,
        )


def _latest(
    run: _Run, samples: dict[int, SampleRecord]
) -> dict[tuple[str, str | None], Annotation]:
    """The annotation that counts per sample and reviewer: the latest updated (the last in
    the file when equal); cancelled ones and those naming nobody are counted and reported."""
    latest: dict[tuple[str, str | None], tuple[tuple[str, int], Annotation]] = {}
    order = 0
    for task in run.tasks:
        sample = samples.get(task.index)
        if sample is None:
            continue
        for annotation in task.annotations:
            order += 1
            if annotation.cancelled:
                run.counts["cancelled"] += 1
                continue
            if annotation.reviewer is None:
                run.problem(task, "the annotation names no annotator", annotation=annotation)
                continue
            rank = (annotation.updated_at or "", order)
            key = (sample.id, annotation.reviewer)
            if key in latest:
                run.counts["superseded"] += 1
                if latest[key][0] > rank:
                    continue
            latest[key] = (rank, annotation)
    return {key: annotation for key, (_, annotation) in latest.items()}


def label_studio_service(runtime: Runtime) -> LabelStudioService:
    """The service as the API and the CLI use it: the registry's schemas, the review
    workflow's reviews."""
    registry = runtime.task_schemas

    async def schema_for(dataset: DatasetRecord) -> TaskSchema:
        return await registry.schema_for(dataset.project_id, dataset, None)

    return LabelStudioService(
        runtime.datasets,
        max_file_bytes=runtime.settings.max_file_bytes,
        reviews=ServiceReviews(runtime.reviews),
        schema_for=schema_for,
    )
