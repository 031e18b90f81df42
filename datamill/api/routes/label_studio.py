"""`/api/datasets/{id}/label-studio-config` and `/api/datasets/{id}/import-label-studio`:
the Label Studio round trip (`labelstudio.service`); the tasks themselves are the export's
``format=label-studio``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from datamill.api.deps import ProjectDep, RuntimeDep
from datamill.api.downloads import download_headers
from datamill.api.uploads import form_file, multipart_body, parse_form, read_upload
from datamill.callers import MEMBER, VIEWER
from datamill.labelstudio.service import label_studio_service
from datamill.protocol.labelstudio import LabelStudioImportReport

router = APIRouter(prefix="/api/datasets", tags=["label-studio"])


@router.get(
    "/{dataset_id}/label-studio-config",
    dependencies=[VIEWER],
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}},
)
async def label_studio_config(
    dataset_id: str, runtime: RuntimeDep, project_id: ProjectDep
) -> Response:
    """The labeling config of the dataset's tasks (XML), for a Label Studio project."""
    service = label_studio_service(runtime)
    config = await service.config(dataset_id, project_id=project_id)
    return Response(
        config,
        media_type="application/xml",
        headers=download_headers(f"{dataset_id}.label-studio.xml"),
    )


@router.post(
    "/{dataset_id}/import-label-studio",
    dependencies=[MEMBER],
    response_model=LabelStudioImportReport,
    openapi_extra=multipart_body(["file"]),
)
async def import_label_studio(
    dataset_id: str, request: Request, runtime: RuntimeDep, project_id: ProjectDep
) -> LabelStudioImportReport:
    """Apply Label Studio's JSON (or JSON_MIN) export (multipart field ``file``) to the
    dataset's samples as reviews; again: nothing changes. A member's: it writes reviews in
    the names of Label Studio's annotators, gold answers and edits."""
    limit = runtime.settings.max_file_bytes
    form = await parse_form(request, limit=limit, fields="Label Studio's export in field 'file'")
    try:
        upload = form_file(form)
        service = label_studio_service(runtime)
        return await service.import_annotations(
            dataset_id, read_upload(upload, limit=limit), project_id=project_id
        )
    finally:
        await form.close()
