"""Splitting a byte stream into JSONL lines without holding more than one line in memory."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Line:
    number: int  # 1-based
    data: bytes  # without the line ending; empty when `oversized`
    oversized: bool = False


async def iter_lines(chunks: AsyncIterable[bytes], *, max_line_bytes: int) -> AsyncIterator[Line]:
    """Yield the lines of a stream; a line longer than ``max_line_bytes`` is reported as
    oversized (and skipped over) instead of being buffered."""
    number = 0
    pending = bytearray()
    skipping = False
    async for chunk in chunks:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                if not skipping:
                    pending += chunk[start:]
                    if len(pending) > max_line_bytes:
                        skipping = True
                        pending.clear()
                break
            number += 1
            if skipping:
                yield Line(number, b"", oversized=True)
                skipping = False
            else:
                pending += chunk[start:end]
                if len(pending) > max_line_bytes:
                    yield Line(number, b"", oversized=True)
                else:
                    yield Line(number, bytes(pending).removesuffix(b"\r"))
            pending.clear()
            start = end + 1
    if skipping:
        yield Line(number + 1, b"", oversized=True)
    elif pending:
        yield Line(number + 1, bytes(pending).removesuffix(b"\r"))
