"""BatchService: the one way to create, read, list, cancel and wait for batches.

The HTTP API, the CLI and (later) generation jobs all call it. Creating a batch only records
it as ``validating`` and wakes the workers; validation and execution happen in workers, so
creating a 50,000-line batch answers at once, as OpenAI's API does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from datamill.engine.context import EngineContext
from datamill.engine.finalize import render_results
from datamill.engine.native.support import native_api
from datamill.errors import Conflict, InvalidRequest, NotFound
from datamill.ids import new_batch_id
from datamill.logs import REQUEST_ID
from datamill.protocol.batches import (
    COMPLETION_WINDOWS,
    MODE_METADATA_KEY,
    BatchCreate,
    BatchMode,
    BatchStatus,
)
from datamill.protocol.files import FilePurpose
from datamill.storage import batches as batch_repo
from datamill.storage import files as file_repo
from datamill.storage.batches import BatchKeyTaken
from datamill.storage.records import BatchRecord
from datamill.storage.schema import DEFAULT_PROJECT_ID


class BatchService:
    def __init__(self, context: EngineContext) -> None:
        self._ctx = context

    async def create(
        self,
        request: BatchCreate,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        idempotency_key: str | None = None,
        key_id: str | None = None,
    ) -> BatchRecord:
        """Record a new batch as ``validating``. With ``idempotency_key``, creating again
        returns the batch first created with that key; `Conflict` if the request differs.
        ``key_id``: the API key creating it (its spend counts against that key)."""
        db = self._ctx.database
        options = self._options(request)
        if idempotency_key is not None:
            existing = await self._by_key(request, options, idempotency_key, project_id)
            if existing is not None:
                return existing
        file = await file_repo.get_file(db, request.input_file_id, project_id=project_id)
        now = self._ctx.clock.now()
        if file is None or (file.expires_at is not None and file.expires_at <= now):
            raise NotFound(f"No such file: {request.input_file_id}", param="input_file_id")
        if file.purpose != FilePurpose.batch:
            raise InvalidRequest(
                f"file {file.id} was uploaded with purpose {file.purpose!r}; a batch needs a "
                "file uploaded with purpose 'batch'",
                param="input_file_id",
                code="invalid_file_purpose",
            )
        try:
            batch = await self._insert(
                request, file.id, options, now, project_id, idempotency_key, key_id
            )
        except BatchKeyTaken as taken:
            # Another request created the batch with this key first.
            existing = await self._by_key(request, options, taken.key, project_id)
            if existing is None:
                raise
            return existing
        self._ctx.signal.notify()
        self._ctx.events.batch_changed(batch.id)
        return batch

    def _options(self, request: BatchCreate) -> dict[str, Any]:
        """The batch's stored ``options``: its datamill options, mode and output expiry."""
        options: dict[str, Any] = {}
        if request.datamill is not None:
            options = request.datamill.model_dump(mode="json", exclude_none=True)
        mode = self._requested_mode(request)
        options.pop("mode", None)
        if mode is not BatchMode.online:
            options["mode"] = mode.value
        if request.output_expires_after is not None:
            options["output_expires_after"] = request.output_expires_after.seconds
        return options

    def _requested_mode(self, request: BatchCreate) -> BatchMode:
        """The mode asked for; ``native`` is refused here when no deployment offers native
        batches at all (which deployments a batch needs is known once it is validated)."""
        try:
            mode, param = request.requested_mode()
        except ValueError as exc:
            raise InvalidRequest(
                str(exc), param=f"metadata.{MODE_METADATA_KEY}", code="invalid_value"
            ) from None
        if mode is BatchMode.native and not any(
            native_api(handle) is not None for handle in self._ctx.router.handles
        ):
            raise InvalidRequest(
                "no deployment offers a native batch API (the openai provider does); "
                "use mode online or auto, or configure such a deployment",
                param=param,
                code="invalid_value",
            )
        return mode

    async def _by_key(
        self, request: BatchCreate, options: dict[str, Any], key: str, project_id: str
    ) -> BatchRecord | None:
        """The batch created with ``key``; `Conflict` when it was created by another request
        (so a reused key never silently answers with a batch the caller did not ask for)."""
        existing = await batch_repo.find_batch_by_key(
            self._ctx.database, key, project_id=project_id
        )
        if existing is None:
            return None
        differs = [
            name
            for name, old, new in (
                ("input file", existing.input_file_id, request.input_file_id),
                ("endpoint", existing.endpoint, request.endpoint),
                ("completion window", existing.completion_window, request.completion_window),
                ("metadata", existing.metadata or None, request.metadata or None),
                ("options", existing.options or None, options or None),
            )
            if old != new
        ]
        if differs:
            raise Conflict(
                f"Idempotency-Key {key!r} was used for batch {existing.id} with another "
                f"{', '.join(differs)}; send the same request again, or use a new key",
                param="Idempotency-Key",
                code="idempotency_key_reused",
            )
        return existing

    async def _insert(
        self,
        request: BatchCreate,
        file_id: str,
        options: dict[str, Any],
        now: float,
        project_id: str,
        idempotency_key: str | None,
        key_id: str | None,
    ) -> BatchRecord:
        return await batch_repo.insert_batch(
            self._ctx.database,
            idempotency_key=idempotency_key,
            key_id=key_id,
            id=new_batch_id(),
            project_id=project_id,
            endpoint=request.endpoint,
            input_file_id=file_id,
            completion_window=request.completion_window,
            status=BatchStatus.validating.value,
            metadata=request.metadata,
            options=options or None,
            created_at=now,
            expires_at=now + COMPLETION_WINDOWS[request.completion_window],
            # The workers log the batch's lines with the id of the request creating it.
            request_id=REQUEST_ID.get(),
        )

    async def get(self, batch_id: str, *, project_id: str = DEFAULT_PROJECT_ID) -> BatchRecord:
        batch = await batch_repo.get_batch(self._ctx.database, batch_id, project_id=project_id)
        if batch is None:
            raise NotFound(f"No such batch: {batch_id}", param="batch_id")
        return batch

    async def forget_key(self, key: str, *, project_id: str = DEFAULT_PROJECT_ID) -> None:
        """Let the next create with ``key`` start a new batch (``batch run --fresh``)."""
        await batch_repo.forget_batch_key(self._ctx.database, key, project_id=project_id)

    async def find_by_key(
        self, key: str, *, project_id: str = DEFAULT_PROJECT_ID
    ) -> BatchRecord | None:
        return await batch_repo.find_batch_by_key(self._ctx.database, key, project_id=project_id)

    async def list(
        self, *, project_id: str = DEFAULT_PROJECT_ID, after: str | None = None, limit: int = 20
    ) -> tuple[list[BatchRecord], bool]:
        return await batch_repo.list_batches(
            self._ctx.database, project_id=project_id, after=after, limit=limit
        )

    async def cancel(self, batch_id: str, *, project_id: str = DEFAULT_PROJECT_ID) -> BatchRecord:
        """Ask a batch to stop: requests in flight finish, the rest end as cancelled."""
        batch = await self.get(batch_id, project_id=project_id)
        if batch.status in {BatchStatus.cancelling, BatchStatus.cancelled}:
            return batch
        if not await batch_repo.request_cancel(
            self._ctx.database, batch_id, now=self._ctx.clock.now()
        ):
            batch = await self.get(batch_id, project_id=project_id)
            if batch.status in {BatchStatus.cancelling, BatchStatus.cancelled}:
                return batch
            raise Conflict(
                f"batch {batch_id} is {batch.status} and can no longer be cancelled",
                param="batch_id",
                code="batch_not_cancellable",
            )
        self._ctx.signal.notify()
        self._ctx.events.batch_changed(batch_id)
        return await self.get(batch_id, project_id=project_id)

    async def wait(
        self,
        batch_id: str,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        poll: float = 0.2,
        timeout: float | None = None,
    ) -> BatchRecord:
        """Return the batch once it reaches a terminal status; `TimeoutError` after
        ``timeout`` seconds of the clock."""
        clock = self._ctx.clock
        deadline = None if timeout is None else clock.monotonic() + timeout
        while True:
            batch = await self.get(batch_id, project_id=project_id)
            if BatchStatus(batch.status).terminal:
                return batch
            if deadline is not None and clock.monotonic() >= deadline:
                raise TimeoutError(f"batch {batch_id} is still {batch.status}")
            await clock.sleep(poll)

    async def results(
        self, batch_id: str, *, ok: bool, project_id: str = DEFAULT_PROJECT_ID
    ) -> tuple[BatchRecord, AsyncIterator[bytes]]:
        """The output (``ok``) or error lines recorded so far, while the batch runs or after.

        A finished batch's lines come from its stored file (the same bytes, without rendering
        them again), unless that file was deleted or has expired."""
        batch = await self.get(batch_id, project_id=project_id)
        file_id = batch.output_file_id if ok else batch.error_file_id
        if BatchStatus(batch.status).terminal and file_id is not None:
            stored = await file_repo.get_file(self._ctx.database, file_id, project_id=project_id)
            now = self._ctx.clock.now()
            if stored is not None and (stored.expires_at is None or stored.expires_at > now):
                return batch, self._ctx.blobs.read(file_id)
        return batch, render_results(self._ctx.database, batch_id, ok=ok)
