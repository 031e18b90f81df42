"""Finalizing a batch: writing its output and error files, then its final status.

Lines follow OpenAI's BatchRequestOutput shape. A success goes to the output file with the
provider's body verbatim. A failure goes to the error file: with ``response`` when the
provider answered (its status code and error body kept) and with ``error.code`` always set
to the datamill category (``rate_limited``, ``server_error``, ``timeout``, ``connection``,
``auth``, ``bad_request``, ``content_filter``, ``not_found``) or the closing reason
(``batch_cancelled``, ``batch_expired``). File ids derive from the batch id, so a
finalization retried after a crash rewrites the same files instead of adding new ones.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson

from datamill.clock import Clock
from datamill.ids import batch_request_id_prefix
from datamill.protocol.batches import BatchStatus
from datamill.protocol.files import FilePurpose
from datamill.storage import batches as batch_repo
from datamill.storage.blobs import BlobStore
from datamill.storage.database import Database
from datamill.storage.records import BatchRecord, FileRecord
from datamill.storage.results import iter_results
from datamill.streams import read_ahead

log = logging.getLogger("datamill.engine")


def output_file_id(batch_id: str, kind: str) -> str:
    digest = hashlib.sha256(f"{batch_id}:{kind}".encode()).hexdigest()[:24]
    return f"file-{digest}"


_LINE = b'{"id":"%s%08d","custom_id":%s,"response":%s,"error":%s}\n'
_RESPONSE = b'{"status_code":%d,"request_id":%s,"body":%s}'


def render_line(id_prefix: bytes, row: Any, *, ok: bool) -> bytes:
    """One JSONL line of an output (``ok``) or error file, built from stored bytes.

    ``id_prefix`` is `batch_request_id_prefix`, encoded; the line number follows it."""
    if row.status_code is None:
        response = b"null"
    else:
        body = row.body if row.body is not None else b"null"
        request_id = orjson.dumps(row.provider_request_id)
        response = _RESPONSE % (row.status_code, request_id, body)
    if ok:
        error = b"null"
    else:
        error = orjson.dumps({"code": row.error_code, "message": row.error_message})
    return _LINE % (id_prefix, row.line, orjson.dumps(row.custom_id), response, error)


async def render_results(database: Database, batch_id: str, *, ok: bool) -> AsyncIterator[bytes]:
    """The output (``ok``) or error file of a batch as it stands now, in input order."""
    id_prefix = batch_request_id_prefix(batch_id).encode()
    async for page in iter_results(database, batch_id, ok=ok):
        yield b"".join([render_line(id_prefix, row, ok=ok) for row in page])


async def finalize_batch(
    database: Database,
    blobs: BlobStore,
    clock: Clock,
    batch: BatchRecord,
    *,
    worker_id: str,
) -> BatchStatus | None:
    """Write the files of a batch whose requests all have results; None if another worker
    finalizes it or it is not ready."""
    if not await batch_repo.claim_finalization(
        database, batch.id, worker_id=worker_id, now=clock.now()
    ):
        return None
    output = await _write_file(database, blobs, clock, batch, kind="output", ok=True)
    errors = await _write_file(database, blobs, clock, batch, kind="errors", ok=False)
    status = await batch_repo.finish_batch(
        database,
        batch.id,
        worker_id=worker_id,
        output_file=output,
        error_file=errors,
        now=clock.now(),
    )
    log.info("batch %s %s", batch.id, status.value if status else "lost its finalizer claim")
    return status


async def _write_file(
    database: Database,
    blobs: BlobStore,
    clock: Clock,
    batch: BatchRecord,
    *,
    kind: str,
    ok: bool,
) -> FileRecord | None:
    file_id = output_file_id(batch.id, kind)
    lines = 0

    async def counted() -> AsyncIterator[bytes]:
        nonlocal lines
        # Pages are read and rendered while the previous ones are written.
        async for chunk in read_ahead(render_results(database, batch.id, ok=ok)):
            lines += chunk.count(b"\n")
            yield chunk

    size = await blobs.write(file_id, counted(), project_id=batch.project_id)
    if lines == 0:
        await blobs.delete(file_id)
        return None
    now = clock.now()
    lifetime = (batch.options or {}).get("output_expires_after")
    return FileRecord(
        id=file_id,
        project_id=batch.project_id,
        filename=f"{batch.id}_{kind}.jsonl",
        purpose=FilePurpose.batch_output.value,
        bytes=size,
        lines=lines,
        sha256=None,
        status="processed",
        created_at=now,
        expires_at=now + float(lifetime) if lifetime else None,
    )
