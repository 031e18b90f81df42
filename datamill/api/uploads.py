"""Reading multipart uploads (`POST /v1/files`, `POST /api/files/validate`, dataset imports):
streamed, with the size limit checked before the body is read when the client announces its
length, and while it is read when it does not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException

from datamill.errors import InvalidRequest, PayloadTooLarge

_READ_SIZE = 1024 * 1024
# Multipart framing and the other form fields, on top of the file itself.
FORM_OVERHEAD = 64 * 1024


def multipart_body(required: list[str], **fields: Any) -> dict[str, Any]:
    """The ``openapi_extra`` describing a multipart body with a binary ``file`` and
    ``fields``: the upload routes read their bodies themselves (streamed, with a size limit),
    so FastAPI cannot describe them for /openapi.json."""
    properties = {"file": {"type": "string", "format": "binary"}, **fields}
    schema = {"type": "object", "required": required, "properties": properties}
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": schema}},
        }
    }


async def read_upload(upload: UploadFile, *, limit: int | None = None) -> AsyncIterator[bytes]:
    """The file's bytes in chunks; a 413 past ``limit`` (for bodies sent without a length)."""
    size = 0
    while chunk := await upload.read(_READ_SIZE):
        size += len(chunk)
        if limit is not None and size > limit:
            raise PayloadTooLarge(
                f"the file is larger than {limit} bytes (DATAMILL_MAX_FILE_BYTES)",
                param="file",
                code="file_too_large",
            )
        yield chunk


async def parse_form(request: Request, *, limit: int, fields: str) -> FormData:
    """The multipart form of ``request``; refused at once when its announced length is over
    ``limit`` (plus the form's framing), and named for the client when malformed."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit + FORM_OVERHEAD:
        raise PayloadTooLarge(
            f"the upload is {int(length)} bytes; the limit is {limit} (DATAMILL_MAX_FILE_BYTES)",
            param="file",
            code="file_too_large",
        )
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidRequest(f"upload files as multipart/form-data with {fields}", param="file")
    try:
        return await request.form(max_files=1, max_fields=10)
    except HTTPException as exc:
        # Starlette reports a malformed body as a bare 400; name the field at fault.
        raise InvalidRequest(
            f"the multipart body could not be read: {exc.detail}", param="file"
        ) from None


def form_file(form: FormData) -> UploadFile:
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidRequest(
            "the 'file' field is missing", param="file", code="missing_required_parameter"
        )
    if upload.filename and "\x00" in upload.filename:  # PostgreSQL's text cannot hold it
        raise InvalidRequest("the file's filename holds a NUL character", param="file")
    return upload


def form_text(form: FormData, name: str, *, required: bool) -> str | None:
    value = form.get(name)
    if value is None or value == "":
        if required:
            raise InvalidRequest(
                f"the '{name}' field is missing", param=name, code="missing_required_parameter"
            )
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"the '{name}' field must be text, not a file", param=name)
    if "\x00" in value:
        raise InvalidRequest(f"the '{name}' field holds a NUL character", param=name)
    return value
