"""Checking a batch file before any batch exists (`POST /api/files/validate`): the same line
checks as validation (`validation.check_lines`), the same limits as an upload, nothing
stored."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from datamill.engine.context import EngineContext
from datamill.engine.files import UploadMeter, too_many_lines
from datamill.engine.validation import ValidationReport, check_lines, report_duplicate
from datamill.protocol.batches import BatchMode
from datamill.providers.base import Endpoint


@dataclass(slots=True)
class ModelUse:
    requests: int = 0
    deployments: dict[str, None] = field(default_factory=dict)  # in order of first use


@dataclass(frozen=True, slots=True)
class FileCheck:
    total: int  # requests (non-blank lines)
    valid: int  # requests without an error of their own
    error_lines: int  # errors found, listed or not
    errors: list[dict[str, Any]]  # as a failed batch's errors.data
    models: dict[str, ModelUse]

    def as_dict(self) -> dict[str, Any]:
        return {
            "object": "file.validation",
            "total": self.total,
            "valid": self.valid,
            "error_lines": self.error_lines,
            "errors": self.errors,
            "models": [
                {"model": name, "requests": use.requests, "deployments": list(use.deployments)}
                for name, use in self.models.items()
            ],
        }


async def check_batch_file(
    context: EngineContext,
    chunks: AsyncIterable[bytes],
    *,
    endpoint: Endpoint,
    mode: BatchMode = BatchMode.online,
) -> FileCheck:
    """What validating a batch of this file would report, line by line; the models it asks
    for and the deployments that would serve them. Raises as an upload would (too large,
    too many lines)."""
    report = ValidationReport()
    first_lines: dict[str, int] = {}
    repeated: dict[str, int] = {}  # custom_id -> the last line using it again
    models: dict[str, ModelUse] = {}
    valid = 0
    limited = _upload_limits(chunks, context)
    native = mode is BatchMode.native
    async for checked in check_lines(context, limited, endpoint, report, native=native):
        first = first_lines.setdefault(checked.custom_id, checked.number)
        if first != checked.number:
            repeated[checked.custom_id] = checked.number
            continue
        valid += 1
        use = models.setdefault(checked.model, ModelUse())
        use.requests += 1
        use.deployments[checked.handle.name] = None
    # Validation finds a repeated custom_id once every line is read, and names its last use.
    for custom_id, line in sorted(repeated.items(), key=lambda item: item[1]):
        report_duplicate(report, custom_id, first_lines[custom_id], line)
    return FileCheck(report.requests, valid, report.error_lines, report.finish(), models)


async def _upload_limits(
    chunks: AsyncIterable[bytes], context: EngineContext
) -> AsyncIterator[bytes]:
    """The file as an upload would take it: refused past DATAMILL_MAX_FILE_BYTES or
    DATAMILL_MAX_FILE_LINES (counted as an upload counts them: every line, blank or not)."""
    settings = context.settings
    meter = UploadMeter(settings.max_file_bytes)
    async for chunk in chunks:
        if not chunk:
            continue
        meter.take(chunk)
        if meter.newlines <= settings.max_file_lines:
            yield chunk  # past the limit, only counted: the error names the file's lines
    if meter.lines > settings.max_file_lines:
        raise too_many_lines(meter.lines, settings.max_file_lines)
