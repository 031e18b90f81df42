"""OpenAI's Batch API as a `NativeBatchAPI`: Files + Batches at the deployment's base URL.

A submit uploads the requests as a JSONL file (``POST /files``, multipart with
``purpose=batch``) and creates a batch on it (``POST /batches``, window ``24h``), labelled
with datamill's job id in its ``metadata`` so that `find` can tell whether a submit cut off
by a crash reached OpenAI. Results are read by streaming the batch's output and error files
(``GET /files/{id}/content``), line by line, never whole. Wire format: OpenAI's Batch API
reference (openai-python ``types/batch.py``, ``types/file_object.py``).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import orjson

from datamill.errors import ErrorCategory, ProviderError
from datamill.ids import new_provider_request_id
from datamill.providers.answers import body_id
from datamill.providers.base import (
    Endpoint,
    NativeBatchState,
    NativeBatchStatus,
    NativeRequest,
    NativeResult,
    ProviderResponse,
    Usage,
)
from datamill.providers.http import (
    HttpAnswer,
    HttpPool,
    category_for_status,
    error_from_answer,
    line_too_long,
    url_segment,
)
from datamill.settings import DeploymentConfig

LABEL_KEY = "datamill_job"  # the metadata key holding datamill's job id
# OpenAI's limits for one batch: 50,000 requests, a 200 MB input file. Bodies may fill
# 190 MB of it; the rest is room for each line's wrapper.
MAX_REQUESTS = 50_000
MAX_BYTES = 190 * 1000 * 1000
_FIND_PAGES = 10  # pages of 100 batches searched for a label, newest first

_STATES = {
    "validating": NativeBatchState.running,
    "in_progress": NativeBatchState.running,
    "finalizing": NativeBatchState.running,
    "cancelling": NativeBatchState.running,
    "completed": NativeBatchState.ended,
    # Expired: what finished has results, the rest has none (they are resubmitted).
    "expired": NativeBatchState.ended,
    "failed": NativeBatchState.failed,
    "cancelled": NativeBatchState.cancelled,
}
# Error-file codes of requests OpenAI never ran: no outcome, so no result.
_NOT_RUN = frozenset({"batch_expired", "batch_cancelled"})


class OpenAIBatches:
    """One deployment's Files and Batches API. Every method may be called again after a
    crash: none of them changes anything but the one upstream batch it names."""

    def __init__(
        self,
        deployment: DeploymentConfig,
        http: HttpPool,
        *,
        max_requests: int = MAX_REQUESTS,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        assert deployment.base_url is not None
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self._http = http
        self._base = deployment.base_url
        self._auth: dict[str, str] = {}
        if deployment.api_key is not None:
            self._auth["Authorization"] = f"Bearer {deployment.api_key.get_secret_value()}"
        self._json = {
            **self._auth,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._create = http.prepare(f"{self._base}/batches", self._json)
        self._boundary = ""
        self._new_boundary()

    def _new_boundary(self) -> None:
        self._boundary = f"datamill-{secrets.token_hex(16)}"
        headers = {
            **self._auth,
            "Content-Type": f"multipart/form-data; boundary={self._boundary}",
            "Accept": "application/json",
        }
        self._upload = self._http.prepare(f"{self._base}/files", headers)

    async def submit(
        self, requests: list[NativeRequest], *, endpoint: Endpoint, label: str | None = None
    ) -> str:
        lines = b"".join(
            orjson.dumps(
                {"custom_id": r.key, "method": "POST", "url": endpoint.value, "body": r.body}
            )
            + b"\n"
            for r in requests
        )
        file_id = await self._upload_file(lines, filename=f"{label or 'datamill'}.jsonl")
        create: dict[str, Any] = {
            "input_file_id": file_id,
            "endpoint": endpoint.value,
            "completion_window": "24h",
        }
        if label is not None:
            create["metadata"] = {LABEL_KEY: label}
        batch = await self._call(await self._http.send(self._create, data=orjson.dumps(create)))
        return str(batch["id"])

    async def _upload_file(self, data: bytes, *, filename: str) -> str:
        if self._boundary.encode() in data:
            self._new_boundary()  # one chance in 2**128; never send a body it would cut
        boundary = self._boundary.encode()
        body = b"".join(
            [
                b"--%s\r\n" % boundary,
                b'Content-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n',
                b"--%s\r\n" % boundary,
                b'Content-Disposition: form-data; name="file"; filename="%s"\r\n'
                % filename.encode(),
                b"Content-Type: application/jsonl\r\n\r\n",
                data,
                b"\r\n--%s--\r\n" % boundary,
            ]
        )
        uploaded = await self._call(await self._http.send(self._upload, data=body))
        return str(uploaded["id"])

    async def poll(self, batch_id: str) -> NativeBatchStatus:
        return _status(await self._retrieve(batch_id))

    def results(self, batch_id: str) -> AsyncIterator[NativeResult]:
        return self._results(batch_id)

    async def _results(self, batch_id: str) -> AsyncIterator[NativeResult]:
        batch = await self._retrieve(batch_id)
        for file_id in (batch.get("output_file_id"), batch.get("error_file_id")):
            if not file_id:
                continue
            async for line in self._lines(str(file_id)):
                result = _result(line)
                if result is not None:
                    yield result

    async def cancel(self, batch_id: str) -> None:
        target = self._http.prepare(
            f"{self._base}/batches/{url_segment(batch_id)}/cancel", self._json
        )
        await self._call(await self._http.send(target, data=b"{}"))

    async def find(self, label: str) -> str | None:
        """The newest batch labelled ``label``, among the newest 1,000."""
        after: str | None = None
        for _ in range(_FIND_PAGES):
            query = "limit=100" + (f"&after={quote(after, safe='')}" if after else "")
            target = self._http.prepare(f"{self._base}/batches?{query}", self._json, method="GET")
            page = await self._call(await self._http.send(target, data=b""))
            data = page.get("data") or []
            for batch in data:
                metadata = batch.get("metadata") if isinstance(batch, dict) else None
                if isinstance(metadata, dict) and metadata.get(LABEL_KEY) == label:
                    return str(batch["id"])
            if not page.get("has_more") or not data:
                return None
            after = str(data[-1]["id"])
        return None

    async def _retrieve(self, batch_id: str) -> dict[str, Any]:
        target = self._http.prepare(
            f"{self._base}/batches/{url_segment(batch_id)}", self._json, method="GET"
        )
        return await self._call(await self._http.send(target, data=b""))

    async def _lines(self, file_id: str) -> AsyncIterator[bytes]:
        """A file's lines, read as its content arrives."""
        target = self._http.prepare(
            f"{self._base}/files/{url_segment(file_id)}/content", self._auth, method="GET"
        )
        stream = await self._http.open_stream(target, data=b"")
        try:
            pending = bytearray()
            async for chunk in stream:
                pending += chunk
                end = pending.rfind(b"\n")
                if end < 0:
                    if len(pending) > stream.max_body:
                        raise line_too_long(stream.max_body)
                    continue
                for line in bytes(pending[:end]).split(b"\n"):
                    if line.strip():
                        yield line
                del pending[: end + 1]
            if pending.strip():
                yield bytes(pending)
        finally:
            stream.close()

    @staticmethod
    async def _call(answer: HttpAnswer) -> dict[str, Any]:
        if answer.status >= 300:
            raise error_from_answer(answer)
        try:
            parsed = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise ProviderError(
                ErrorCategory.server_error,
                "the batch API answered 2xx with a body that is not a JSON object",
                status_code=answer.status,
            )
        return parsed

    async def aclose(self) -> None:
        return None


def _status(batch: dict[str, Any]) -> NativeBatchStatus:
    status = str(batch.get("status"))
    state = _STATES.get(status)
    if state is None:
        raise ProviderError(ErrorCategory.server_error, f"unknown batch status {status!r}")
    counts = batch.get("request_counts") or {}
    message = None
    if state is NativeBatchState.failed:
        errors = (batch.get("errors") or {}).get("data") or []
        message = "; ".join(
            f"line {e.get('line')}: {e.get('message')}" if e.get("line") else str(e.get("message"))
            for e in errors[:5]
            if isinstance(e, dict)
        )
    return NativeBatchStatus(
        state=state,
        total=int(counts.get("total") or 0),
        finished=int(counts.get("completed") or 0) + int(counts.get("failed") or 0),
        message=message or None,
    )


def _result(line: bytes) -> NativeResult | None:
    """One line of an output or error file; None for a request that never ran, or a line
    that is not a result at all."""
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(item, dict) or not isinstance(item.get("custom_id"), str):
        return None
    key: str = item["custom_id"]
    response = item.get("response")
    if isinstance(response, dict) and isinstance(response.get("status_code"), int):
        status: int = response["status_code"]
        body = response.get("body")
        request_id = response.get("request_id")
        if 200 <= status < 300:
            return NativeResult(
                key,
                response=ProviderResponse(
                    body=orjson.dumps(body),  # one line, whatever the upstream's spacing
                    usage=Usage.of(body),
                    request_id=str(request_id or body_id(body) or new_provider_request_id()),
                    status_code=status,
                ),
            )
        error = error_from_answer(HttpAnswer(status, {}, orjson.dumps(body)))
        error.request_id = str(request_id) if request_id else None
        return NativeResult(key, error=error)
    error_item = item.get("error")
    if isinstance(error_item, dict):
        code = error_item.get("code")
        if code in _NOT_RUN:
            return None
        message = str(error_item.get("message") or code or "the request failed")
        # Not an HTTP failure: categorised by its code alone (a content filter is final).
        category = category_for_status(500, {"error": error_item})
        return NativeResult(key, error=ProviderError(category, message))
    return None
