"""Multipart uploads: the size limit, the form, and the file's contents as chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException

from datamill.errors import InvalidRequest, PayloadTooLarge

READ_SIZE = 1024 * 1024
# Multipart framing and the other form fields, on top of the file itself.
FORM_OVERHEAD = 64 * 1024


def check_upload_size(request: Request, limit: int) -> None:
    """Refuse an upload that says it is over ``limit`` bytes before reading any of it."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit + FORM_OVERHEAD:
        raise PayloadTooLarge(
            f"the upload is {int(length)} bytes; the limit is {limit} (DATAMILL_MAX_FILE_BYTES)",
            param="file",
            code="file_too_large",
        )


async def parse_form(request: Request) -> FormData:
    try:
        return await request.form(max_files=1, max_fields=10)
    except HTTPException as exc:
        # Starlette reports a malformed body as a bare 400; name the field at fault.
        raise InvalidRequest(
            f"the multipart body could not be read: {exc.detail}", param="file"
        ) from None


async def read_upload(upload: UploadFile, *, limit: int | None = None) -> AsyncIterator[bytes]:
    """The file's bytes in chunks; a 413 past ``limit`` (for bodies sent without a length)."""
    size = 0
    while chunk := await upload.read(READ_SIZE):
        size += len(chunk)
        if limit is not None and size > limit:
            raise PayloadTooLarge(
                f"the file is larger than {limit} bytes (DATAMILL_MAX_FILE_BYTES)",
                param="file",
                code="file_too_large",
            )
        yield chunk
