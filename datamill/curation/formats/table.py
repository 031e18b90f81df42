"""`csv`: one row per sample, the content flattened to a column per top-level field (or per
field its task schema's ``export.fields`` names).

Columns: id, topic, sample_type, status, model, created_at (Unix seconds), then the content's
fields in the order they first appear in the first page of samples (1,000; a sample whose
task schema names ``export.fields`` brings those, dotted paths as columns named by the path;
a field named like a column before it is written ``content.NAME``), then ``content_other``
(a JSON object of the fields that first appear later, empty when none: a stream cannot go
back to add a column), metadata and provenance. Text is written as it is, other values as
JSON (``true``, ``3``, ``{"a": 1}``); a missing value is an empty cell. RFC 4180 quoting,
CRLF line ends.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

from datamill.curation.formats.report import ExportReport
from datamill.protocol.task_schema_format import field_value
from datamill.storage.samples import SampleRecord
from datamill.task_schemas.service import SchemaSet

FIXED = ("id", "topic", "sample_type", "status", "model", "created_at")
TRAILING = ("content_other", "metadata", "provenance")


class CsvEncoder:
    def __init__(self, report: ExportReport, schemas: SchemaSet) -> None:
        self._report = report
        self._schemas = schemas
        self._fields: list[str] | None = None  # content fields with a column of their own

    def begin(self) -> bytes:
        return b""

    def encode(self, page: list[SampleRecord]) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        if self._fields is None:
            if not page:
                return b""
            self._fields = list(
                dict.fromkeys(
                    key for r in page for key in self._schema_fields(r) or list(r.content)
                )
            )
            taken = set(FIXED) | set(TRAILING)
            heads = [f"content.{k}" if k in taken else k for k in self._fields]
            writer.writerow([*FIXED, *heads, *TRAILING])
        fields = self._fields
        known = frozenset(fields)
        for record in page:
            content = record.content
            chosen = self._schema_fields(record)
            if chosen:
                # The schema names what is exported: its fields without a column, only.
                found = ((k, field_value(content, k)) for k in chosen if k not in known)
                other = {k: v for k, v in found if v is not None}
            else:
                other = {k: v for k, v in content.items() if k not in known}
            writer.writerow(
                [
                    record.id,
                    record.topic or "",
                    record.sample_type or "",
                    record.status,
                    record.model or "",
                    int(record.created_at),
                    *(_cell(field_value(content, name)) for name in fields),
                    orjson.dumps(other).decode() if other else "",
                    _cell(record.metadata),
                    _cell(record.provenance),
                ]
            )
        self._report.exported += len(page)
        return buffer.getvalue().encode()

    def _schema_fields(self, record: SampleRecord) -> list[str]:
        return self._schemas.for_type(record.sample_type).export.fields

    def end(self) -> bytes:
        if self._fields is None:  # no samples: the header alone
            buffer = io.StringIO()
            csv.writer(buffer).writerow([*FIXED, *TRAILING])
            return buffer.getvalue().encode()
        return b""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()
