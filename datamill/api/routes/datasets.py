"""`/api/datasets`: datasets and their samples, search, import and export."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse

from datamill.api.deps import ProjectDep, RuntimeDep
from datamill.api.downloads import download_headers
from datamill.api.uploads import form_file, multipart_body, parse_form, read_upload
from datamill.auth.service import Caller
from datamill.callers import MEMBER, REVIEWER, VIEWER, CallerDep
from datamill.curation.exports import (
    EXTENSIONS,
    MEDIA_TYPES,
    ExportOptions,
    check_options,
    export_check,
)
from datamill.curation.formats.chat import ChatMapping
from datamill.curation.formats.report import ExportReport
from datamill.curation.formats.splits import parse_splits
from datamill.curation.lookups import SampleQuery
from datamill.errors import InvalidRequest
from datamill.labelstudio.service import label_studio_service
from datamill.protocol.common import ListObject
from datamill.protocol.datasets import (
    BatchImportReport,
    BatchImportRequest,
    DatasetCreate,
    DatasetDeleted,
    DatasetObject,
    DatasetUpdate,
    ExportCheck,
    ExportFormat,
    ImportReport,
    ReviewState,
    SampleCreate,
    SampleFilterBody,
    SampleObject,
    SamplesChanged,
    SampleStatus,
    SampleUpdate,
    SampleVersionObject,
    Visibility,
)
from datamill.protocol.dedup import DedupReport, DedupRequest
from datamill.render.datasets import dataset_object, sample_object, sample_version_object
from datamill.review.service import Reviewer
from datamill.runtime import Runtime

router = APIRouter(prefix="/api/datasets", tags=["datasets"])

Time = Annotated[float | None, Query(ge=0, allow_inf_nan=False)]


async def sample_query(
    topic: str | None = None,
    sample_type: str | None = None,
    status: SampleStatus | None = None,
    model: str | None = None,
    created_after: Time = None,
    created_before: Time = None,
    deleted: Visibility = Visibility.exclude,
    q: Annotated[str | None, Query(description='search: words, "phrases", -excluded')] = None,
    batch_id: Annotated[str | None, Query(description="provenance names this batch")] = None,
    job_id: Annotated[str | None, Query(description="provenance names this job")] = None,
    review_state: Annotated[
        list[ReviewState] | None, Query(description="in any of these review states")
    ] = None,
) -> SampleQuery:
    """The sample filters every read and export of samples takes."""
    return SampleQuery(
        topic=topic,
        sample_type=sample_type,
        status=status,
        model=model,
        created_after=created_after,
        created_before=created_before,
        deleted=deleted,
        q=q,
        batch_id=batch_id,
        job_id=job_id,
        review_state=tuple(review_state or ()),
    )


SampleQueryDep = Annotated[SampleQuery, Depends(sample_query)]


async def _check_blind(
    runtime: Runtime,
    dataset_id: str,
    states: Sequence[ReviewState],
    caller: Caller,
    project_id: str,
) -> None:
    """Blind mode: below member, no filter by review state (`ReviewService`)."""
    if states:
        await runtime.reviews.check_state_filter(
            dataset_id, states, Reviewer.of(caller), project_id=project_id
        )


@router.post("", dependencies=[MEMBER], response_model=DatasetObject)
async def create_dataset(
    request: DatasetCreate, runtime: RuntimeDep, project_id: ProjectDep
) -> DatasetObject:
    return dataset_object(await runtime.datasets.create(request, project_id=project_id))


@router.get("", dependencies=[VIEWER], response_model=ListObject[DatasetObject])
async def list_datasets(
    runtime: RuntimeDep,
    project_id: ProjectDep,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    deleted: Visibility = Visibility.exclude,
) -> ListObject[DatasetObject]:
    """Datasets, newest first, with their live sample counts."""
    views, has_more = await runtime.datasets.list_datasets(
        project_id=project_id, after=after, limit=limit, deleted=deleted
    )
    return ListObject[DatasetObject].page([dataset_object(v) for v in views], has_more=has_more)


@router.get("/{dataset_id}", dependencies=[VIEWER], response_model=DatasetObject)
async def retrieve_dataset(
    dataset_id: str,
    runtime: RuntimeDep,
    project_id: ProjectDep,
    deleted: Literal["exclude", "include"] = "exclude",
) -> DatasetObject:
    """A dataset with its stats."""
    view = await runtime.datasets.get(
        dataset_id, project_id=project_id, deleted=Visibility(deleted)
    )
    return dataset_object(view)


@router.patch("/{dataset_id}", dependencies=[MEMBER], response_model=DatasetObject)
async def update_dataset(
    dataset_id: str, request: DatasetUpdate, runtime: RuntimeDep, project_id: ProjectDep
) -> DatasetObject:
    return dataset_object(await runtime.datasets.update(dataset_id, request, project_id=project_id))


@router.delete("/{dataset_id}", dependencies=[MEMBER], response_model=DatasetDeleted)
async def delete_dataset(
    dataset_id: str, runtime: RuntimeDep, project_id: ProjectDep
) -> DatasetDeleted:
    await runtime.datasets.delete(dataset_id, project_id=project_id)
    return DatasetDeleted(id=dataset_id)


@router.post("/{dataset_id}/restore", dependencies=[MEMBER], response_model=DatasetObject)
async def restore_dataset(
    dataset_id: str, runtime: RuntimeDep, project_id: ProjectDep
) -> DatasetObject:
    return dataset_object(await runtime.datasets.restore(dataset_id, project_id=project_id))


@router.get("/{dataset_id}/samples", dependencies=[VIEWER], response_model=ListObject[SampleObject])
async def list_samples(
    dataset_id: str,
    query: SampleQueryDep,
    runtime: RuntimeDep,
    project_id: ProjectDep,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    order: Literal["asc", "desc"] = "desc",
    random: Annotated[int | None, Query(ge=1, le=1000)] = None,
    *,
    caller: CallerDep,
) -> ListObject[SampleObject]:
    """Samples matching the filters, newest first; ``random=N``: N of them at random."""
    await _check_blind(runtime, dataset_id, query.review_state, caller, project_id)
    if random is not None:
        if after is not None:
            raise InvalidRequest("random samples have no pages: leave `after` out", param="after")
        records = await runtime.datasets.random_samples(
            dataset_id, query, random, project_id=project_id
        )
        return ListObject[SampleObject].page([sample_object(r) for r in records], has_more=False)
    records, has_more = await runtime.datasets.list_samples(
        dataset_id, query, project_id=project_id, after=after, limit=limit, order=order
    )
    return ListObject[SampleObject].page([sample_object(r) for r in records], has_more=has_more)


@router.post("/{dataset_id}/samples", dependencies=[REVIEWER], response_model=SampleObject)
async def add_sample(
    dataset_id: str,
    body: SampleCreate,
    runtime: RuntimeDep,
    project_id: ProjectDep,
    caller: CallerDep,
) -> SampleObject:
    """Add one sample; a 409 ``duplicate_sample`` when a live sample has its content."""
    record = await runtime.datasets.add_sample(
        dataset_id, body, project_id=project_id, changed_by=caller.key_id
    )
    return sample_object(record)


@router.post("/{dataset_id}/samples/delete", dependencies=[REVIEWER], response_model=SamplesChanged)
async def delete_samples(
    dataset_id: str,
    body: SampleFilterBody,
    runtime: RuntimeDep,
    project_id: ProjectDep,
    caller: CallerDep,
) -> SamplesChanged:
    """Delete the live samples the body selects (ids and/or filters, or ``all``)."""
    await _check_blind(runtime, dataset_id, body.review_state or [], caller, project_id)
    return await runtime.datasets.delete_samples(dataset_id, body, project_id=project_id)


@router.post(
    "/{dataset_id}/samples/restore", dependencies=[REVIEWER], response_model=SamplesChanged
)
async def restore_samples(
    dataset_id: str,
    body: SampleFilterBody,
    runtime: RuntimeDep,
    project_id: ProjectDep,
    caller: CallerDep,
) -> SamplesChanged:
    """Restore the deleted samples the body selects, but those whose content is live."""
    await _check_blind(runtime, dataset_id, body.review_state or [], caller, project_id)
    return await runtime.datasets.restore_samples(dataset_id, body, project_id=project_id)


@router.get("/{dataset_id}/samples/{sample_id}", dependencies=[VIEWER], response_model=SampleObject)
async def retrieve_sample(
    dataset_id: str, sample_id: str, runtime: RuntimeDep, project_id: ProjectDep
) -> SampleObject:
    record = await runtime.datasets.get_sample(dataset_id, sample_id, project_id=project_id)
    return sample_object(record)


@router.patch(
    "/{dataset_id}/samples/{sample_id}", dependencies=[REVIEWER], response_model=SampleObject
)
async def update_sample(
    dataset_id: str,
    sample_id: str,
    body: SampleUpdate,
    runtime: RuntimeDep,
    project_id: ProjectDep,
    caller: CallerDep,
) -> SampleObject:
    """Change a live sample's content, topic, sample_type or metadata; the previous version
    stays in its history."""
    record = await runtime.datasets.update_sample(
        dataset_id, sample_id, body, project_id=project_id, changed_by=caller.key_id
    )
    return sample_object(record)


@router.get(
    "/{dataset_id}/samples/{sample_id}/history",
    dependencies=[VIEWER],
    response_model=ListObject[SampleVersionObject],
)
async def sample_history(
    dataset_id: str, sample_id: str, runtime: RuntimeDep, project_id: ProjectDep
) -> ListObject[SampleVersionObject]:
    """A sample's versions, oldest first: who changed what, and when."""
    versions = await runtime.datasets.sample_history(dataset_id, sample_id, project_id=project_id)
    objects = [sample_version_object(sample_id, v) for v in versions]
    return ListObject[SampleVersionObject].page(objects, has_more=False)


@router.post(
    "/{dataset_id}/samples/{sample_id}/history/{version}/restore",
    dependencies=[REVIEWER],
    response_model=SampleObject,
)
async def restore_sample_version(
    dataset_id: str,
    sample_id: str,
    version: Annotated[int, Path(ge=1, le=2**31 - 1)],
    runtime: RuntimeDep,
    project_id: ProjectDep,
    caller: CallerDep,
) -> SampleObject:
    """Bring a past version back, recorded as a new version."""
    record = await runtime.datasets.restore_sample_version(
        dataset_id, sample_id, version, project_id=project_id, changed_by=caller.key_id
    )
    return sample_object(record)


@router.delete(
    "/{dataset_id}/samples/{sample_id}", dependencies=[REVIEWER], response_model=SampleObject
)
async def delete_sample(
    dataset_id: str, sample_id: str, runtime: RuntimeDep, project_id: ProjectDep
) -> SampleObject:
    record = await runtime.datasets.delete_sample(dataset_id, sample_id, project_id=project_id)
    return sample_object(record)


@router.post(
    "/{dataset_id}/samples/{sample_id}/restore",
    dependencies=[REVIEWER],
    response_model=SampleObject,
)
async def restore_sample(
    dataset_id: str, sample_id: str, runtime: RuntimeDep, project_id: ProjectDep
) -> SampleObject:
    record = await runtime.datasets.restore_sample(dataset_id, sample_id, project_id=project_id)
    return sample_object(record)


_IMPORT_SCHEMA = multipart_body(["file"])


@router.post(
    "/{dataset_id}/import",
    dependencies=[MEMBER],
    response_model=ImportReport,
    openapi_extra=_IMPORT_SCHEMA,
)
async def import_samples(
    dataset_id: str, request: Request, runtime: RuntimeDep, project_id: ProjectDep
) -> ImportReport:
    """Import a JSONL file (multipart field ``file``), all lines or none."""
    limit = runtime.settings.max_file_bytes
    form = await parse_form(request, limit=limit, fields="the JSONL in field 'file'")
    try:
        upload = form_file(form)
        return await runtime.datasets.import_jsonl(
            dataset_id, read_upload(upload, limit=limit), project_id=project_id
        )
    finally:
        await form.close()


@router.post("/{dataset_id}/import-batch", dependencies=[MEMBER], response_model=BatchImportReport)
async def import_batch(
    dataset_id: str, body: BatchImportRequest, runtime: RuntimeDep, project_id: ProjectDep
) -> BatchImportReport:
    """A finished batch's succeeded answers as samples, one per request; again: none added."""
    return await runtime.datasets.import_batch(dataset_id, body, project_id=project_id)


@router.post("/{dataset_id}/dedup", dependencies=[MEMBER], response_model=DedupReport)
async def dedup_samples(
    dataset_id: str, body: DedupRequest, runtime: RuntimeDep, project_id: ProjectDep
) -> DedupReport:
    """Near-duplicates among the samples the body selects (none: the whole dataset), in
    groups; unless ``dry_run``, the duplicates are deleted (restorable)."""
    return await runtime.datasets.dedup(dataset_id, body, project_id=project_id)


async def export_options(
    splits: Annotated[
        str | None, Query(description="named fractions: train=0.8,validation=0.1,test=0.1")
    ] = None,
    split: Annotated[str | None, Query(description="the one of `splits` to export")] = None,
    seed: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    user_field: Annotated[str | None, Query(min_length=1)] = None,
    assistant_field: Annotated[str | None, Query(min_length=1)] = None,
    system: Annotated[str | None, Query(min_length=1)] = None,
) -> ExportOptions:
    """An export's split and chat mapping (`curation.exports.ExportOptions`)."""
    options = ExportOptions(
        mapping=ChatMapping(user_field=user_field, assistant_field=assistant_field, system=system),
        splits=None if splits is None else parse_splits(splits),
        split=split,
        seed=seed,
    )
    check_options(options)
    return options


ExportOptionsDep = Annotated[ExportOptions, Depends(export_options)]


@router.get("/{dataset_id}/export", dependencies=[VIEWER])
async def export_samples(
    dataset_id: str,
    query: SampleQueryDep,
    options: ExportOptionsDep,
    runtime: RuntimeDep,
    project_id: ProjectDep,
    export_format: Annotated[ExportFormat, Query(alias="format")] = ExportFormat.jsonl,
    *,
    caller: CallerDep,
) -> StreamingResponse:
    """The matching samples in creation order, streamed in ``format`` (one split of them
    with ``splits`` and ``split``)."""
    await _check_blind(runtime, dataset_id, query.review_state, caller, project_id)
    if export_format is ExportFormat.label_studio:
        service = label_studio_service(runtime)
        record, chunks = await service.export(
            dataset_id, query, project_id=project_id, options=options
        )
    else:
        record, chunks = await runtime.datasets.export(
            dataset_id, query, export_format, project_id=project_id, options=options
        )
    # Names are letters, digits, . _ -; so are split names.
    stem = record.name if options.split is None else f"{record.name}.{options.split}"
    return StreamingResponse(
        chunks,
        media_type=MEDIA_TYPES[export_format],
        headers=download_headers(f"{stem}.{EXTENSIONS[export_format]}"),
    )


@router.get("/{dataset_id}/export/check", dependencies=[VIEWER], response_model=ExportCheck)
async def check_export(
    dataset_id: str,
    query: SampleQueryDep,
    options: ExportOptionsDep,
    runtime: RuntimeDep,
    project_id: ProjectDep,
    caller: CallerDep,
) -> ExportCheck:
    """What ``format=openai-chat`` with these parameters writes, by the checks of OpenAI's
    fine-tuning data-preparation guide: examples left out and why, warnings, tokens."""
    await _check_blind(runtime, dataset_id, query.review_state, caller, project_id)
    report = ExportReport()
    _, chunks = await runtime.datasets.export(
        dataset_id,
        query,
        ExportFormat.openai_chat,
        project_id=project_id,
        options=replace(options, count_tokens=True),
        report=report,
        announce=False,
    )
    async for _ in chunks:
        pass
    return export_check(dataset_id, report)
