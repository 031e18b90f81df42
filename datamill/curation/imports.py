"""A dataset import: JSONL lines, each checked as a `SampleLine`, every problem located by
line number (1-based, blank lines counted) and field; the samples stored in one
transaction (`storage.samples.import_samples`), exact duplicates skipped and reported."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import orjson
from pydantic import ValidationError

from datamill.errors import InvalidLines, InvalidRequest
from datamill.generation.confined import SchemaProblem
from datamill.nlp.canonical import normalized_hash
from datamill.protocol.datasets import DuplicateLine, ImportReport, SampleLine
from datamill.protocol.limits import nests_too_deeply, too_deep_message
from datamill.storage import samples as sample_repo
from datamill.storage.database import Database
from datamill.storage.samples import NewSample
from datamill.task_schemas.service import SchemaSet
from datamill.task_schemas.validation import content_problems, problem_param

# Samples per insert.
IMPORT_CHUNK = 500
# Located problems a failure lists (it counts them all), and duplicates a report lists.
MAX_PROBLEMS = 100
MAX_DUPLICATES_LISTED = 1000


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
    if nests_too_deeply(line.data, value):
        return [LineProblem(line.number, None, too_deep_message("the line"))]
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


async def import_lines(
    database: Database,
    dataset_id: str,
    data: AsyncIterable[bytes],
    *,
    project_id: str,
    max_line_bytes: int,
    now: float,
    schemas: SchemaSet | None = None,
) -> ImportReport | None:
    """Store the samples of a JSONL stream in a live dataset of the project, in one
    transaction that an error rolls back: `InvalidLines` when any line is invalid (every
    line is still checked, to report them all; a content its task schema refuses, from
    ``schemas``, is an invalid line naming the path at fault), `InvalidRequest` when there
    is no sample at all. None (and nothing read) when the project has no such live
    dataset."""
    lines = 0
    offered: list[tuple[int, str]] = []  # (line, content hash) per sample offered, in order
    invalid = 0
    problems: list[LineProblem] = []

    async def checked(pending: list[tuple[int, NewSample]]) -> list[NewSample]:
        """The pending samples once their contents pass their schemas (none when any line
        of the import is invalid: nothing will be stored)."""
        nonlocal invalid
        found: list[SchemaProblem | None] = [None] * len(pending)
        if schemas is not None:
            found = await content_problems(
                [(schemas.for_type(sample.sample_type), sample.content) for _, sample in pending]
            )
        for (number, _), problem in zip(pending, found, strict=True):
            if problem is not None:
                invalid += 1
                if len(problems) < MAX_PROBLEMS:
                    problems.append(LineProblem(number, problem_param(problem), problem.message))
        if invalid:
            return []
        offered.extend((number, sample.content_hash or "") for number, sample in pending)
        return [sample for _, sample in pending]

    async def chunks() -> AsyncIterator[list[NewSample]]:
        nonlocal lines, invalid
        pending: list[tuple[int, NewSample]] = []
        async for raw in split_lines(data, max_line_bytes=max_line_bytes):
            lines += 1
            parsed = parse_line(raw, max_line_bytes=max_line_bytes)
            if isinstance(parsed, list):
                invalid += 1
                problems.extend(parsed[: MAX_PROBLEMS - len(problems)])
                continue
            sample = new_sample(parsed, source="import")
            # Hashed here, so a duplicate's report can name the sample holding its content.
            pending.append(
                (raw.number, replace(sample, content_hash=normalized_hash(sample.content)))
            )
            if len(pending) >= IMPORT_CHUNK:
                if stored := await checked(pending):
                    yield stored
                pending = []
        if pending and (stored := await checked(pending)):
            yield stored
        if invalid:
            raise InvalidLines(
                f"{invalid} of {lines} lines are invalid; nothing was imported",
                problems=[p.as_dict() for p in sorted(problems, key=lambda p: p.line)],
                code="invalid_import",
            )
        if not lines:
            raise InvalidRequest(
                "the file has no samples: one JSON object per line",
                param="file",
                code="empty_file",
            )

    stored = await sample_repo.import_samples(
        database, dataset_id, chunks(), project_id=project_id, now=now
    )
    if stored is None:
        return None
    duplicates = [
        (number, content_hash)
        for (number, content_hash), sample_id in zip(offered, stored.ids, strict=True)
        if sample_id is None
    ]
    return ImportReport(
        dataset_id=dataset_id,
        lines=lines,
        imported=len(offered) - len(duplicates),
        duplicates=len(duplicates),
        duplicate_lines=[
            DuplicateLine(line=number, duplicate_of=stored.holders[content_hash])
            for number, content_hash in duplicates[:MAX_DUPLICATES_LISTED]
        ],
    )
