"""Writing a dataset export: JSONL (one `SampleLine` per line, which imports as it is) or
Parquet (the same fields as columns; content, metadata and provenance as JSON text), both
streamed page by page."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from types import ModuleType
from typing import Any

import orjson

from datamill.errors import InvalidRequest
from datamill.storage.samples import SampleRecord

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


async def jsonl_chunks(pages: AsyncIterable[list[SampleRecord]]) -> AsyncIterator[bytes]:
    async for page in pages:
        yield b"".join(
            orjson.dumps(export_line(record), option=orjson.OPT_APPEND_NEWLINE) for record in page
        )


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


async def parquet_chunks(
    pages: AsyncIterable[list[SampleRecord]], parquet: ModuleType
) -> AsyncIterator[bytes]:
    """A Parquet file, one row group per page. ``parquet`` is from `load_pyarrow`."""
    import pyarrow

    schema = pyarrow.schema(
        [
            (name, pyarrow.int64() if name == "created_at" else pyarrow.string())
            for name in PARQUET_COLUMNS
        ]
    )
    sink = _Sink()
    writer = parquet.ParquetWriter(sink, schema, compression="zstd")
    try:
        async for page in pages:
            if not page:
                continue
            lines = [export_line(record) for record in page]
            columns = {
                name: [_cell(name, line[name]) for line in lines] for name in PARQUET_COLUMNS
            }
            writer.write_table(pyarrow.table(columns, schema=schema))
            yield sink.take()
    finally:
        writer.close()
    yield sink.take()


def _cell(name: str, value: Any) -> Any:
    if name in _JSON_COLUMNS and value is not None:
        return orjson.dumps(value).decode()
    return value
