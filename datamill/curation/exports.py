"""Writing a dataset export, streamed page by page: JSONL (one `SampleLine` per line, which
imports as it is), Parquet (the same fields as columns; content, metadata and provenance as
JSON text), and the formats of `curation.formats` (OpenAI chat JSONL, an in-context-learning
prompt file, CSV). Each format is an `Encoder`; a seeded split can select the samples."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

import orjson

from datamill.curation.formats.chat import ChatEncoder, ChatMapping, IclEncoder, SchemaMappings
from datamill.curation.formats.checks import TOKEN_LIMIT
from datamill.curation.formats.report import ExportReport, default_epochs, distribution
from datamill.curation.formats.splits import SplitAssigner, Splits
from datamill.curation.formats.table import CsvEncoder
from datamill.errors import InvalidRequest
from datamill.protocol.datasets import ExportCheck, ExportFormat, LeftOutSample
from datamill.protocol.task_schema_format import DEFAULT_SCHEMA, field_value
from datamill.storage.samples import SampleRecord
from datamill.task_schemas.service import SchemaSet

# Parquet columns, in order; the JSON ones hold JSON text.
PARQUET_COLUMNS = (
    "id",
    "topic",
    "sample_type",
    "status",
    "model",
    "content",
    "metadata",
    "provenance",
    "created_at",
)
_JSON_COLUMNS = frozenset({"content", "metadata", "provenance"})


def export_line(record: SampleRecord) -> dict[str, Any]:
    """A sample as an export line (`protocol.datasets.SampleLine`'s fields)."""
    return {
        "id": record.id,
        "topic": record.topic,
        "sample_type": record.sample_type,
        "status": record.status,
        "model": record.model,
        "content": record.content,
        "metadata": record.metadata,
        "provenance": record.provenance,
        "created_at": int(record.created_at),
    }


# Each format's media type and file extension.
MEDIA_TYPES = {
    ExportFormat.jsonl: "application/jsonl",
    ExportFormat.parquet: "application/vnd.apache.parquet",
    ExportFormat.openai_chat: "application/jsonl",
    ExportFormat.icl: "text/plain; charset=utf-8",
    ExportFormat.csv: "text/csv; charset=utf-8",
    ExportFormat.label_studio: "application/json",
}
EXTENSIONS = {
    ExportFormat.jsonl: "jsonl",
    ExportFormat.parquet: "parquet",
    ExportFormat.openai_chat: "jsonl",
    ExportFormat.icl: "txt",
    ExportFormat.csv: "csv",
    ExportFormat.label_studio: "json",
}


class Encoder(Protocol):
    """A format: bytes to start with, bytes per page of samples, bytes to end with."""

    def begin(self) -> bytes: ...

    def encode(self, page: list[SampleRecord]) -> bytes: ...

    def end(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """How to export: the chat mapping (`openai-chat`, `icl`), and which split of
    ``splits`` (seeded by ``seed``) to write, all samples when ``split`` is None."""

    mapping: ChatMapping = field(default_factory=ChatMapping)
    splits: Splits | None = None
    split: str | None = None
    seed: int = 0
    count_tokens: bool = False  # estimate every example's tokens into the report
    # A format whose encoder its own package makes (`label-studio`: `labelstudio.service`).
    encoder: Callable[[ExportReport], Encoder] | None = None


def check_options(options: ExportOptions) -> None:
    """A 400 for options that do not fit together."""
    if options.split is not None and options.splits is None:
        raise InvalidRequest("a split is chosen from `splits`: give them too", param="splits")
    if options.splits is not None:
        if options.split is None:
            names = ", ".join(options.splits.names)
            raise InvalidRequest(
                f"an export writes one split: choose one of {names} with `split`", param="split"
            )
        if options.split not in options.splits.names:
            raise InvalidRequest(
                f"split {options.split!r} is not one of {', '.join(options.splits.names)}",
                param="split",
            )


# No task schema names any sample: every one follows the default.
NO_SCHEMAS = SchemaSet({}, DEFAULT_SCHEMA)


def encoder_for(
    export_format: ExportFormat,
    options: ExportOptions,
    report: ExportReport,
    schemas: SchemaSet = NO_SCHEMAS,
    fields: Sequence[str] = (),
) -> Encoder:
    """The format's encoder (Parquet's needs pyarrow: a 400 when it is missing). Samples
    are mapped by the task schema they follow in ``schemas``; ``fields`` are the content
    fields Parquet gives columns of their own (`export_fields`)."""
    if options.encoder is not None:
        return options.encoder(report)
    if export_format is ExportFormat.label_studio:
        raise InvalidRequest(
            "Label Studio tasks are exported by the Label Studio service", param="format"
        )
    if export_format is ExportFormat.parquet:
        return ParquetEncoder(load_pyarrow(), report, fields)
    if export_format is ExportFormat.openai_chat:
        return ChatEncoder(SchemaMappings(options.mapping, schemas), report)
    if export_format is ExportFormat.icl:
        return IclEncoder(SchemaMappings(options.mapping, schemas), report)
    if export_format is ExportFormat.csv:
        return CsvEncoder(report, schemas)
    return JsonlEncoder(report)


def export_fields(schemas: SchemaSet, sample_types: Sequence[str | None]) -> list[str]:
    """The ``export.fields`` of the schemas samples of these types follow, in order, each
    once (a column of its own in a Parquet export)."""
    fields: dict[str, None] = {}
    for sample_type in sorted(sample_types, key=lambda t: (t is None, t or "")):
        fields.update(dict.fromkeys(schemas.for_type(sample_type).export.fields))
    return list(fields)


async def encoded(
    pages: AsyncIterable[list[SampleRecord]],
    encoder: Encoder,
    options: ExportOptions,
    report: ExportReport,
) -> AsyncIterator[bytes]:
    """The export's bytes: each page (only its samples in the chosen split) encoded."""
    if options.count_tokens:
        report.tokens = []
    assigner = (
        SplitAssigner(options.splits, options.seed)
        if options.splits is not None and options.split is not None
        else None
    )
    if head := encoder.begin():
        yield head
    async for page in pages:
        if assigner is not None:
            page = [r for r in page if assigner.split_of(r.id) == options.split]
        report.samples += len(page)
        if chunk := encoder.encode(page):
            yield chunk
    if tail := encoder.end():
        yield tail


async def encoded_splits(
    pages: AsyncIterable[list[SampleRecord]],
    encoders: Mapping[str, Encoder],
    assigner: SplitAssigner,
    reports: Mapping[str, ExportReport],
) -> AsyncIterator[tuple[str, bytes]]:
    """Every split's bytes in one pass, each chunk with its split's name: the same bytes,
    split by split, as `encoded` gives for each split alone."""
    for name, encoder in encoders.items():
        if head := encoder.begin():
            yield name, head
    async for page in pages:
        parts: dict[str, list[SampleRecord]] = {name: [] for name in encoders}
        for record in page:
            parts[assigner.split_of(record.id)].append(record)
        for name, records in parts.items():
            reports[name].samples += len(records)
            if chunk := encoders[name].encode(records):
                yield name, chunk
    for name, encoder in encoders.items():
        if tail := encoder.end():
            yield name, tail


class JsonlEncoder:
    def __init__(self, report: ExportReport) -> None:
        self._report = report

    def begin(self) -> bytes:
        return b""

    def encode(self, page: list[SampleRecord]) -> bytes:
        self._report.exported += len(page)
        return b"".join(
            orjson.dumps(export_line(record), option=orjson.OPT_APPEND_NEWLINE) for record in page
        )

    def end(self) -> bytes:
        return b""


def load_pyarrow() -> ModuleType:
    """pyarrow's parquet module, or a 400 naming ``format`` when the extra is missing."""
    try:
        import pyarrow.parquet
    except ImportError:
        raise InvalidRequest(
            "Parquet exports need pyarrow, in datamill's `export` extra: "
            "pip install 'datamill[export]'; or ask for format=jsonl",
            param="format",
            code="export_unavailable",
        ) from None
    parquet: ModuleType = pyarrow.parquet
    return parquet


class _Sink:
    """A file-like object pyarrow writes to; the bytes are taken out after each row group,
    so the export streams instead of building the whole file in memory."""

    closed = False

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0

    def write(self, data: Any) -> int:
        part = bytes(data)
        self._parts.append(part)
        self._position += len(part)
        return len(part)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


class ParquetEncoder:
    """A Parquet file, one row group per page. ``parquet`` is from `load_pyarrow`. After
    `PARQUET_COLUMNS`, a text column per content field of ``fields`` (named by its path,
    ``content.NAME`` when a column has the name; values that are not text as JSON text)."""

    def __init__(
        self, parquet: ModuleType, report: ExportReport, fields: Sequence[str] = ()
    ) -> None:
        import pyarrow

        self._pyarrow = pyarrow
        self._report = report
        self._fields = list(fields)
        self._heads = [f"content.{f}" if f in PARQUET_COLUMNS else f for f in self._fields]
        report.columns = list(self._heads)
        self._schema = pyarrow.schema(
            [
                (name, pyarrow.int64() if name == "created_at" else pyarrow.string())
                for name in PARQUET_COLUMNS
            ]
            + [(head, pyarrow.string()) for head in self._heads]
        )
        self._sink = _Sink()
        self._writer = parquet.ParquetWriter(self._sink, self._schema, compression="zstd")

    def begin(self) -> bytes:
        return b""

    def encode(self, page: list[SampleRecord]) -> bytes:
        if not page:
            return b""
        lines = [export_line(record) for record in page]
        columns = {name: [_cell(name, line[name]) for line in lines] for name in PARQUET_COLUMNS}
        for path, head in zip(self._fields, self._heads, strict=True):
            columns[head] = [_text(field_value(r.content, path)) for r in page]
        self._writer.write_table(self._pyarrow.table(columns, schema=self._schema))
        self._report.exported += len(page)
        return self._sink.take()

    def end(self) -> bytes:
        self._writer.close()
        return self._sink.take()


def _cell(name: str, value: Any) -> Any:
    if name in _JSON_COLUMNS and value is not None:
        return orjson.dumps(value).decode()
    return value


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def export_check(dataset_id: str, report: ExportReport) -> ExportCheck:
    """The check of an `openai-chat` export whose stream filled ``report`` (with tokens)."""
    counted = report.tokens or []
    totals = [total for total, _ in counted]
    epochs = default_epochs(report.exported)
    return ExportCheck(
        dataset_id=dataset_id,
        samples=report.samples,
        exported=report.exported,
        left_out=dict(report.left_out),
        left_out_samples=[LeftOutSample(**sample) for sample in report.left_out_samples],
        warnings=dict(report.warnings),
        token_limit=TOKEN_LIMIT,
        tokens=distribution(totals),
        assistant_tokens=distribution([assistant for _, assistant in counted]),
        epochs=epochs,
        billing_tokens=epochs * sum(min(TOKEN_LIMIT, total) for total in totals),
    )
