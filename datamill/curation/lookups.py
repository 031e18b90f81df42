"""What every part of the dataset service shares: a dataset or sample found in the
caller's project (or a 404 naming it), sample filters checked and built, and the errors
they answer with."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from datamill.clock import Clock
from datamill.errors import Conflict, InvalidRequest, NotFound
from datamill.events.publisher import EventPublisher
from datamill.protocol.datasets import (
    ReviewState,
    SampleFilterBody,
    SampleStatus,
    Visibility,
    check_plain_text,
)
from datamill.storage import datasets as dataset_repo
from datamill.storage import samples as sample_repo
from datamill.storage.database import Database
from datamill.storage.datasets import DatasetRecord
from datamill.storage.samples import SampleFilter, SampleRecord
from datamill.storage.schema import DEFAULT_PROJECT_ID
from datamill.storage.search import parse_search
from datamill.task_schemas.service import TaskSchemaService
from datamill.task_schemas.validation import content_problems, invalid_content


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
    review_state: tuple[ReviewState, ...] = ()  # in any of these review states
    ids: tuple[str, ...] = ()  # only these samples (any of them)


class DatasetLookups:
    """The store, the clock and the lookups the dataset service's parts build on."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        max_line_bytes: int,
        schemas: TaskSchemaService | None = None,
        events: EventPublisher | None = None,
    ) -> None:
        self._db = database
        self._clock = clock
        self._max_line_bytes = max_line_bytes
        self.schemas = schemas or TaskSchemaService(database, clock)
        self._events = events  # None: no events (an export's `export` event)

    async def resolve(
        self,
        reference: str,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        deleted: Visibility = Visibility.exclude,
    ) -> str:
        """The id of the dataset ``reference`` names: its id (``ds_...``) or its name (with
        ``deleted=only``: the newest deleted dataset of that name)."""
        plain_text(reference, "dataset")
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

    async def dataset(
        self, dataset_id: str, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> DatasetRecord:
        """A live dataset of the project, without the stats `DatasetService.get` counts."""
        return await self._dataset(dataset_id, project_id)

    async def _dataset(
        self,
        dataset_id: str,
        project_id: str,
        deleted: Visibility = Visibility.exclude,
    ) -> DatasetRecord:
        record = None
        if storable(dataset_id):
            record = await dataset_repo.get_dataset(
                self._db, dataset_id, project_id=project_id, visibility=deleted
            )
        if record is None:
            raise no_dataset(dataset_id)
        return record

    async def _sample(self, dataset_id: str, sample_id: str, project_id: str) -> SampleRecord:
        _, record = await self._dataset_and_sample(dataset_id, sample_id, project_id)
        return record

    async def _dataset_and_sample(
        self, dataset_id: str, sample_id: str, project_id: str
    ) -> tuple[DatasetRecord, SampleRecord]:
        """The live dataset and its sample (deleted or not); 404s as `_dataset`'s."""
        dataset = await self._dataset(dataset_id, project_id)
        record = None
        if storable(sample_id):
            record = await sample_repo.get_sample(self._db, dataset_id, sample_id)
        if record is None:
            raise no_sample(dataset_id, sample_id)
        return dataset, record

    async def _check_content(
        self,
        project_id: str,
        dataset: DatasetRecord,
        sample_type: str | None,
        content: dict[str, Any],
    ) -> None:
        """A 400 naming the path at fault unless ``content`` passes the ``content`` JSON
        Schema of the task schema a sample of this type follows."""
        schema = await self.schemas.schema_for(project_id, dataset, sample_type)
        [problem] = await content_problems([(schema, content)])
        if problem is not None:
            raise invalid_content(problem, schema)

    def _filter(self, query: SampleQuery) -> SampleFilter:
        for name in ("topic", "sample_type", "model", "q", "batch_id", "job_id"):
            plain_text(getattr(query, name), name)
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
            review_states=tuple(state.value for state in query.review_state),
            ids=query.ids,
        )

    def _body_filter(self, body: SampleFilterBody) -> SampleFilter:
        given = body.model_fields_set - {"all"}
        if not given and not body.all:
            raise InvalidRequest(
                "name the samples: ids or a filter (topic, sample_type, status, model, "
                "created_after, created_before, q, batch_id, job_id, review_state), or all: "
                "true for every sample",
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
                review_state=tuple(body.review_state or ()),
            )
        )
        return replace(where, ids=tuple(body.ids or ()))


def storable(value: str) -> bool:
    """Whether a text column can hold ``value`` (an id that cannot is no one's)."""
    try:
        check_plain_text(value)
    except ValueError:
        return False
    return True


def plain_text(value: str | None, param: str) -> None:
    if value is not None and not storable(value):
        raise InvalidRequest(
            f"{param} has a NUL character or a lone surrogate", param=param, code="invalid_value"
        )


def no_dataset(dataset_id: str) -> NotFound:
    return NotFound(f"No such dataset: {dataset_id}", param="dataset_id")


def no_sample(dataset_id: str, sample_id: str) -> NotFound:
    return NotFound(f"No sample {sample_id} in dataset {dataset_id}", param="sample_id")


def duplicate(what: str, holder: str | None) -> Conflict:
    return Conflict(
        f"{what} is the content of the live sample {holder} of this dataset",
        param="content",
        code="duplicate_sample",
    )
