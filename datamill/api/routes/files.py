"""`/v1/files`, as OpenAI's Files API."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from datamill.api.deps import ProjectDep, RuntimeDep
from datamill.api.downloads import download_headers
from datamill.api.uploads import form_file, form_text, multipart_body, parse_form, read_upload
from datamill.callers import MEMBER, VIEWER
from datamill.errors import InvalidRequest
from datamill.protocol.common import ListObject
from datamill.protocol.files import FileDeleted, FileObject
from datamill.render.files import file_object

router = APIRouter(prefix="/v1/files", tags=["files"])


def _expires_after(form_value: object, anchor: object) -> int | None:
    if form_value is None:
        if anchor is not None:
            raise InvalidRequest(
                "expires_after[seconds] is missing",
                param="expires_after.seconds",
                code="missing_required_parameter",
            )
        return None
    if anchor not in (None, "created_at"):
        raise InvalidRequest(
            "expires_after[anchor] must be 'created_at'", param="expires_after.anchor"
        )
    try:
        return int(str(form_value))
    except ValueError:
        raise InvalidRequest(
            "expires_after[seconds] must be an integer", param="expires_after.seconds"
        ) from None


# The route reads the multipart body itself (to stream it with a size limit), so its fields
# are described here for /openapi.json.
_UPLOAD_SCHEMA = multipart_body(
    ["file", "purpose"],
    purpose={"type": "string", "examples": ["batch"]},
    **{
        "expires_after[anchor]": {"type": "string", "enum": ["created_at"]},
        "expires_after[seconds]": {"type": "integer", "minimum": 3600, "maximum": 2592000},
    },
)


@router.post("", dependencies=[MEMBER], response_model=FileObject, openapi_extra=_UPLOAD_SCHEMA)
async def upload_file(request: Request, runtime: RuntimeDep, project_id: ProjectDep) -> FileObject:
    """Upload a file (multipart: ``file``, ``purpose``, optional ``expires_after``)."""
    form = await parse_form(
        request, limit=runtime.settings.max_file_bytes, fields="fields 'file' and 'purpose'"
    )
    try:
        upload = form_file(form)
        purpose = form_text(form, "purpose", required=True)
        assert purpose is not None
        expires_after = _expires_after(
            form.get("expires_after[seconds]"), form.get("expires_after[anchor]")
        )
        record = await runtime.files.upload(
            read_upload(upload),
            filename=upload.filename or "upload.jsonl",
            purpose=purpose,
            project_id=project_id,
            expires_after=expires_after,
        )
    finally:
        await form.close()
    return file_object(record)


@router.get("", dependencies=[VIEWER], response_model=ListObject[FileObject])
async def list_files(
    runtime: RuntimeDep,
    project_id: ProjectDep,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    order: Literal["asc", "desc"] = "desc",
    purpose: str | None = None,
) -> ListObject[FileObject]:
    records, has_more = await runtime.files.list(
        project_id=project_id, after=after, limit=limit, order=order, purpose=purpose
    )
    return ListObject[FileObject].page([file_object(r) for r in records], has_more=has_more)


@router.get("/{file_id}", dependencies=[VIEWER], response_model=FileObject)
async def retrieve_file(file_id: str, runtime: RuntimeDep, project_id: ProjectDep) -> FileObject:
    return file_object(await runtime.files.get(file_id, project_id=project_id))


@router.delete("/{file_id}", dependencies=[MEMBER], response_model=FileDeleted)
async def delete_file(file_id: str, runtime: RuntimeDep, project_id: ProjectDep) -> FileDeleted:
    await runtime.files.delete(file_id, project_id=project_id)
    return FileDeleted(id=file_id)


@router.get("/{file_id}/content", dependencies=[VIEWER])
async def file_content(
    file_id: str, runtime: RuntimeDep, project_id: ProjectDep
) -> StreamingResponse:
    """The file's bytes, streamed."""
    record, chunks = await runtime.files.content(file_id, project_id=project_id)
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(record.bytes),
            **download_headers(record.filename),
        },
    )
