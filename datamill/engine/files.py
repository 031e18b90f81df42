"""FileService: uploads streamed into the blob store with their limits, and file lookups."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import Literal

from datamill.clock import Clock
from datamill.errors import InvalidRequest, NotFound, PayloadTooLarge
from datamill.ids import new_file_id
from datamill.protocol.files import UPLOADABLE_PURPOSES, FilePurpose
from datamill.settings import Settings
from datamill.storage import files as file_repo
from datamill.storage.blobs import BlobStore
from datamill.storage.database import Database
from datamill.storage.records import FileRecord
from datamill.storage.schema import DEFAULT_PROJECT_ID

BATCH_FILE_LIFETIME = 30 * 24 * 3600  # OpenAI's default for purpose=batch


def file_too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the file is larger than {limit} bytes (DATAMILL_MAX_FILE_BYTES); split it or raise "
        "the limit",
        param="file",
        code="file_too_large",
    )


def too_many_lines(lines: int, limit: int) -> InvalidRequest:
    return InvalidRequest(
        f"the file has {lines} lines; a batch file may have at most {limit} "
        "(DATAMILL_MAX_FILE_LINES)",
        param="file",
        code="too_many_requests",
    )


class UploadMeter:
    """An upload's size and lines, counted as its chunks stream by; refused with
    `file_too_large` past ``max_bytes``. Lines are counted as an upload counts them: every
    line, blank or not, the last one with or without its newline."""

    __slots__ = ("_last", "_max_bytes", "newlines", "size")

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._last = b""
        self.size = 0
        self.newlines = 0

    def take(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise file_too_large(self._max_bytes)
        self.newlines += chunk.count(b"\n")
        self._last = chunk[-1:]

    @property
    def lines(self) -> int:
        return self.newlines + (1 if self.size and self._last != b"\n" else 0)


class FileService:
    """Stores and serves files. Contents are streamed: never held whole in memory."""

    def __init__(
        self, database: Database, blobs: BlobStore, settings: Settings, clock: Clock
    ) -> None:
        self._db = database
        self._blobs = blobs
        self._settings = settings
        self._clock = clock

    async def upload(
        self,
        data: AsyncIterable[bytes],
        *,
        filename: str,
        purpose: str,
        project_id: str = DEFAULT_PROJECT_ID,
        expires_after: int | None = None,
    ) -> FileRecord:
        if purpose not in {p.value for p in UPLOADABLE_PURPOSES}:
            allowed = ", ".join(sorted(p.value for p in UPLOADABLE_PURPOSES))
            raise InvalidRequest(
                f"purpose {purpose!r} is not one of {allowed}",
                param="purpose",
                code="invalid_value",
            )
        if expires_after is not None and not 3600 <= expires_after <= 2_592_000:
            raise InvalidRequest(
                "expires_after.seconds must be between 3600 and 2592000",
                param="expires_after.seconds",
                code="invalid_value",
            )
        settings = self._settings
        file_id = new_file_id()
        digest = hashlib.sha256()
        meter = UploadMeter(settings.max_file_bytes)

        async def measured() -> AsyncIterator[bytes]:
            async for chunk in data:
                if chunk:
                    meter.take(chunk)
                    digest.update(chunk)
                    yield chunk

        await self._blobs.write(file_id, measured(), project_id=project_id)
        size, lines = meter.size, meter.lines
        if purpose == FilePurpose.batch and lines > settings.max_file_lines:
            await self._blobs.delete(file_id)
            raise too_many_lines(lines, settings.max_file_lines)
        now = self._clock.now()
        if expires_after is None and purpose == FilePurpose.batch:
            expires_after = BATCH_FILE_LIFETIME
        record = FileRecord(
            id=file_id,
            project_id=project_id,
            filename=filename or "upload.jsonl",
            purpose=purpose,
            bytes=size,
            lines=lines,
            sha256=digest.hexdigest(),
            status="processed",
            created_at=now,
            expires_at=now + expires_after if expires_after else None,
        )
        try:
            await file_repo.insert_file(self._db, record)
        except BaseException:
            await self._blobs.delete(file_id)
            raise
        return record

    async def get(self, file_id: str, *, project_id: str = DEFAULT_PROJECT_ID) -> FileRecord:
        record = await file_repo.get_file(self._db, file_id, project_id=project_id)
        if record is None or self._expired(record):
            raise NotFound(f"No such file: {file_id}", param="file_id")
        return record

    async def list(
        self,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        after: str | None = None,
        limit: int = 10_000,
        order: Literal["asc", "desc"] = "desc",
        purpose: str | None = None,
    ) -> tuple[list[FileRecord], bool]:
        records, has_more = await file_repo.list_files(
            self._db, project_id=project_id, after=after, limit=limit, order=order, purpose=purpose
        )
        return [r for r in records if not self._expired(r)], has_more

    async def delete(self, file_id: str, *, project_id: str = DEFAULT_PROJECT_ID) -> None:
        await self.get(file_id, project_id=project_id)
        # Row first: a crash in between leaves an unreachable blob, never a file without content.
        await file_repo.delete_file(self._db, file_id, project_id=project_id)
        await self._blobs.delete(file_id)

    async def content(
        self, file_id: str, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> tuple[FileRecord, AsyncIterator[bytes]]:
        record = await self.get(file_id, project_id=project_id)
        return record, self._blobs.read(file_id)

    def _expired(self, record: FileRecord) -> bool:
        return record.expires_at is not None and record.expires_at <= self._clock.now()
