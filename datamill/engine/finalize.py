"""Finalizing a batch: writing its output and error files, then its final status.

Lines follow OpenAI's BatchRequestOutput shape and its rule for ``response`` and ``error``.
A success goes to the output file with the provider's body verbatim. A failure goes to the
error file: when the provider answered over HTTP (any status), in ``response`` (its status
code, request id and error body verbatim, ``param`` and ``code`` kept) with ``error: null``;
only a failure that got no HTTP answer (timeout, connection, a network setup that cannot
work, expired, cancelled, a request datamill refused) sets ``error`` ``{code, message}``.
Every error line also carries ``datamill_category``: the datamill category
(``rate_limited``, ``server_error``, ``timeout``, ``connection``, ``auth``, ``bad_request``,
``content_filter``, ``not_found``, ``network_setup``) or the closing reason
(``batch_cancelled``, ``batch_expired``...). File ids derive from the batch id, so a
finalization retried after a crash rewrites the same files instead of adding new ones.

While a batch runs, `extend_drafts` writes the part of its files that is final already (every
line before the first one still without a result, storage/drafts.py), so finalization only
renders the lines that finished last: the files are ready moments after the last answer.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

from datamill.clock import Clock
from datamill.engine.context import FinishHook
from datamill.errors import StorageError
from datamill.events.publisher import EventPublisher
from datamill.ids import batch_request_id_prefix
from datamill.protocol.batches import BatchStatus
from datamill.protocol.files import FilePurpose
from datamill.storage import batches as batch_repo
from datamill.storage import drafts
from datamill.storage.blobs import BlobStore
from datamill.storage.database import Database
from datamill.storage.drafts import OutputDraft
from datamill.storage.records import BatchRecord, FileRecord
from datamill.storage.results import count_results, iter_results
from datamill.streams import read_ahead

log = logging.getLogger("datamill.engine")


def output_file_id(batch_id: str, kind: str) -> str:
    digest = hashlib.sha256(f"{batch_id}:{kind}".encode()).hexdigest()[:24]
    return f"file-{digest}"


_LINE = b'{"id":"%s%08d","custom_id":%s,"response":%s,"error":%s}\n'
_ERROR_LINE = b'{"id":"%s%08d","custom_id":%s,"response":%s,"error":%s,"datamill_category":%s}\n'
_RESPONSE = b'{"status_code":%d,"request_id":%s,"body":%s}'


def render_line(id_prefix: bytes, row: Any, *, ok: bool) -> bytes:
    """One JSONL line of an output (``ok``) or error file, built from stored bytes.

    ``id_prefix`` is `batch_request_id_prefix`, encoded; the line number follows it."""
    custom_id = orjson.dumps(row.custom_id)
    error = b"null"
    if row.status_code is None:
        # No HTTP answer: the only case where OpenAI sets ``error``.
        response = b"null"
        error = orjson.dumps(
            {"code": row.error_code, "message": row.error_message, **_param(row.body)}
        )
    else:
        body = row.body if row.body is not None else _error_body(row, ok=ok)
        request_id = orjson.dumps(row.provider_request_id)
        response = _RESPONSE % (row.status_code, request_id, body)
    if ok:
        return _LINE % (id_prefix, row.line, custom_id, response, error)
    category = orjson.dumps(row.error_code)
    return _ERROR_LINE % (id_prefix, row.line, custom_id, response, error, category)


def _param(body: bytes | None) -> dict[str, str]:
    """``{"param": ...}`` when a failure without an HTTP answer names the field at fault (a
    request refused before it was sent), as OpenAI's errors do; else nothing."""
    if body is None:
        return {}
    decoded = orjson.loads(body)
    error = decoded.get("error") if isinstance(decoded, dict) else None
    param = error.get("param") if isinstance(error, dict) else None
    return {"param": param} if isinstance(param, str) else {}


def _error_body(row: Any, *, ok: bool) -> bytes:
    """The body of an HTTP answer datamill kept no body of (a 2xx it judged a failure, such as
    a finish it cannot use): the failure in OpenAI's error shape, so no message is lost."""
    if ok:
        return b"null"
    error = {"message": row.error_message, "type": "upstream_error", "param": None}
    return orjson.dumps({"error": {**error, "code": row.error_code}})


async def render_results(
    database: Database, batch_id: str, *, ok: bool, after_line: int = -1
) -> AsyncIterator[bytes]:
    """The output (``ok``) or error file of a batch as it stands now, in input order (only
    the lines after ``after_line``)."""
    id_prefix = batch_request_id_prefix(batch_id).encode()
    async for page in iter_results(database, batch_id, ok=ok, after_line=after_line):
        yield b"".join([render_line(id_prefix, row, ok=ok) for row in page])


_KINDS = (("output", True), ("errors", False))
# A draft keeps at most this many finished chunks in memory before storing them.
_CHUNKS_PER_SAVE = 8
# Rendered size of a line until a draft knows its own average.
_GUESSED_LINE_BYTES = 512


async def extend_drafts(
    database: Database, blobs: BlobStore, batch: BatchRecord, *, owner: str, now: float
) -> None:
    """Write the part of a running batch's output and error files that is final already:
    the lines before its first line without a result, in whole chunks. Each kind waits until
    it has at least a chunk's worth of new lines, so a sweep rarely renders a line twice."""
    until = await drafts.first_unfinished_line(database, batch.id)
    if until is None:
        return  # every request has a result: finalization writes what is left
    for kind, ok in _KINDS:
        draft = await drafts.get_draft(database, batch.id, kind)
        if draft is None:
            draft = OutputDraft(
                batch_id=batch.id,
                kind=kind,
                blob_id=output_file_id(batch.id, kind),
                owner=owner,
                chunks=0,
                through_line=-1,  # before any line
                carry=b"",
                lines=0,
                size=0,
            )
            if not await drafts.start_draft(database, draft, project_id=batch.project_id, now=now):
                continue
        if draft.owner != owner or until - 1 <= draft.through_line:
            continue
        line_bytes = draft.size / draft.lines if draft.lines else _GUESSED_LINE_BYTES
        new_lines = await count_results(
            database, batch.id, ok=ok, after_line=draft.through_line, before_line=until
        )
        if len(draft.carry) + new_lines * line_bytes >= blobs.chunk_size:
            await _extend(database, blobs.chunk_size, draft, until=until, ok=ok)


async def _extend(
    database: Database, chunk_size: int, draft: OutputDraft, *, until: int, ok: bool
) -> None:
    id_prefix = batch_request_id_prefix(draft.batch_id).encode()
    pending = bytearray(draft.carry)
    chunks: list[bytes] = []
    lines = 0
    through = draft.through_line
    pages = iter_results(
        database, draft.batch_id, ok=ok, after_line=draft.through_line, before_line=until
    )
    async for page in pages:
        pending += b"".join([render_line(id_prefix, row, ok=ok) for row in page])
        lines += len(page)
        through = page[-1].line
        while len(pending) >= chunk_size:
            chunks.append(bytes(pending[:chunk_size]))
            del pending[:chunk_size]
        if len(chunks) >= _CHUNKS_PER_SAVE:
            after = draft.extended(chunks, carry=bytes(pending), through_line=through, lines=lines)
            if not await drafts.save_extension(database, draft, after, chunks):
                return  # taken over by the finalizer, or the batch moved on
            draft, chunks, lines = after, [], 0
    if chunks:
        # Every line before `until` is final, those of the other kind included.
        after = draft.extended(chunks, carry=bytes(pending), through_line=until - 1, lines=lines)
        await drafts.save_extension(database, draft, after, chunks)


async def finalize_batch(
    database: Database,
    blobs: BlobStore,
    clock: Clock,
    batch: BatchRecord,
    *,
    worker_id: str,
    events: EventPublisher | None = None,
    hooks: Sequence[FinishHook] = (),
) -> BatchStatus | None:
    """Write the files of a batch whose requests all have results; None if another worker
    finalizes it or it is not ready. ``events`` hears of its status changes. ``hooks`` run
    once the files are written, before the final status: a store error in one is retried
    with the finalization; any other failure is logged, and the batch finishes anyway."""
    if not await batch_repo.claim_finalization(
        database, batch.id, worker_id=worker_id, now=clock.now()
    ):
        return None
    if events is not None:
        events.batch_changed(batch.id)
    output = await _write_file(database, blobs, clock, batch, kind="output", owner=worker_id)
    errors = await _write_file(database, blobs, clock, batch, kind="errors", owner=worker_id)
    await drafts.delete_drafts(database, batch.id)
    for hook in hooks:
        try:
            await hook(batch)
        except StorageError:
            raise
        except Exception:
            log.exception("a finish hook of batch %s failed", batch.id)
    status = await batch_repo.finish_batch(
        database,
        batch.id,
        worker_id=worker_id,
        output_file=output,
        error_file=errors,
        now=clock.now(),
    )
    if events is not None and status is not None:
        events.batch_changed(batch.id)
    log.info("batch %s %s", batch.id, status.value if status else "lost its finalizer claim")
    return status


async def _write_file(
    database: Database,
    blobs: BlobStore,
    clock: Clock,
    batch: BatchRecord,
    *,
    kind: str,
    owner: str,
) -> FileRecord | None:
    file_id = output_file_id(batch.id, kind)
    draft = await drafts.take_over_draft(database, batch.id, kind, owner=owner)
    lines = draft.lines if draft is not None else 0

    async def counted() -> AsyncIterator[bytes]:
        nonlocal lines
        after_line = -1
        if draft is not None:
            after_line = draft.through_line
            if draft.carry:
                yield draft.carry
        # Pages are read and rendered while the previous ones are written.
        rest = render_results(database, batch.id, ok=kind == "output", after_line=after_line)
        async for chunk in read_ahead(rest):
            lines += chunk.count(b"\n")
            yield chunk

    if draft is None:
        size = await blobs.write(file_id, counted(), project_id=batch.project_id)
    else:
        written = draft.size - len(draft.carry)
        size = await blobs.append(file_id, counted(), first_seq=draft.chunks, offset=written)
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
