"""File objects (`GET /v1/files/{file_id}`)."""

from __future__ import annotations

from datamill.protocol.files import FileObject
from datamill.render.timestamps import timestamp
from datamill.storage.records import FileRecord


def file_object(record: FileRecord) -> FileObject:
    return FileObject(
        id=record.id,
        bytes=record.bytes,
        created_at=int(record.created_at),
        filename=record.filename,
        purpose=record.purpose,
        status="processed",
        expires_at=timestamp(record.expires_at),
    )
