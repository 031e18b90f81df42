"""`POST /api/files/validate`: a batch file checked line by line before it is uploaded."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, Request

from datamill.api.deps import RuntimeDep
from datamill.api.uploads import form_file, form_text, multipart_body, parse_form, read_upload
from datamill.callers import MEMBER
from datamill.engine.file_check import check_batch_file
from datamill.errors import InvalidRequest
from datamill.protocol.batches import BatchMode
from datamill.providers.base import Endpoint

router = APIRouter(prefix="/api/files", tags=["files"])

E = TypeVar("E", Endpoint, BatchMode)


_VALIDATE_SCHEMA = multipart_body(
    ["file", "endpoint"],
    endpoint={"type": "string", "enum": [e.value for e in Endpoint]},
    mode={"type": "string", "enum": [m.value for m in BatchMode]},
    purpose={"type": "string", "enum": ["batch"]},
)


@router.post("/validate", dependencies=[MEMBER], openapi_extra=_VALIDATE_SCHEMA)
async def validate_file(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """Check a batch file as creating a batch from it would, line by line, and store
    nothing: ``{total, valid, error_lines, errors: [{line, code, message, param}],
    models}``. Multipart as ``POST /v1/files``, plus ``endpoint`` (and ``mode``)."""
    form = await parse_form(
        request, limit=runtime.settings.max_file_bytes, fields="fields 'file' and 'endpoint'"
    )
    try:
        upload = form_file(form)
        endpoint = _choice(Endpoint, form_text(form, "endpoint", required=True) or "", "endpoint")
        mode = _choice(BatchMode, form_text(form, "mode", required=False) or "online", "mode")
        purpose = form_text(form, "purpose", required=False)
        if purpose not in (None, "batch"):
            raise InvalidRequest(
                "only batch files are checked: purpose must be 'batch'", param="purpose"
            )
        check = await check_batch_file(
            runtime.engine, read_upload(upload), endpoint=endpoint, mode=mode
        )
    finally:
        await form.close()
    return {"filename": upload.filename, "endpoint": endpoint.value, **check.as_dict()}


def _choice(kind: type[E], value: str, param: str) -> E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(repr(member.value) for member in kind)
        raise InvalidRequest(
            f"{param} must be one of {allowed}, got {value!r}", param=param, code="invalid_value"
        ) from None
