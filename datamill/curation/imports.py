"""Reading a dataset import: JSONL lines, each checked as a `SampleLine`, every problem
located by line number (1-based, blank lines counted) and field."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from datamill.protocol.datasets import SampleLine
from datamill.storage.samples import NewSample


@dataclass(frozen=True, slots=True)
class LineProblem:
    line: int
    param: str | None  # the field at fault, dotted (``provenance.cost``); None: the line
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "param": self.param, "message": self.message}


@dataclass(frozen=True, slots=True)
class RawLine:
    number: int
    data: bytes | None  # None when the line was longer than the limit (and dropped)


async def split_lines(data: AsyncIterable[bytes], *, max_line_bytes: int) -> AsyncIterator[RawLine]:
    """The non-blank lines of a stream of chunks, numbered. A line longer than
    ``max_line_bytes`` is not kept whole: it comes out with ``data=None``."""
    buffer = bytearray()
    number = 0
    overlong = False
    async for chunk in data:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            number += 1
            if not overlong and len(buffer) + end - start <= max_line_bytes:
                buffer += chunk[start:end]
                if buffer.strip():
                    yield RawLine(number, bytes(buffer))
            else:
                yield RawLine(number, None)
            buffer.clear()
            overlong = False
            start = end + 1
        if not overlong:
            buffer += chunk[start:]
            if len(buffer) > max_line_bytes:
                overlong = True
                buffer.clear()
    if overlong:
        yield RawLine(number + 1, None)
    elif buffer.strip():
        yield RawLine(number + 1, bytes(buffer))


def parse_line(line: RawLine, *, max_line_bytes: int) -> SampleLine | list[LineProblem]:
    """The line as a sample, or what is wrong with it."""
    if line.data is None:
        return [LineProblem(line.number, None, f"the line is longer than {max_line_bytes} bytes")]
    try:
        value = orjson.loads(line.data)
    except orjson.JSONDecodeError as exc:
        return [LineProblem(line.number, None, f"the line is not valid JSON: {exc}")]
    if not isinstance(value, dict):
        return [LineProblem(line.number, None, "each line must be a JSON object")]
    try:
        return SampleLine.model_validate(value)
    except ValidationError as exc:
        return [
            LineProblem(
                line.number,
                ".".join(str(part) for part in error["loc"]) or None,
                str(error["msg"]).removeprefix("Value error, "),
            )
            for error in exc.errors()
        ]


def new_sample(line: SampleLine, *, source: str) -> NewSample:
    """The sample to store for a valid line. Its provenance says it was imported, unless
    the line brings a provenance of its own (an export from elsewhere does)."""
    provenance = (
        line.provenance.model_dump(mode="json", exclude_none=True)
        if line.provenance is not None
        else {"source": source}
    )
    return NewSample(
        content=line.content,
        topic=line.topic,
        sample_type=line.sample_type,
        status=line.status.value,
        model=line.model,
        provenance=provenance,
        metadata=line.metadata,
    )
