"""Local files for the CLI: streamed reads, atomic writes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

CHUNK = 1024 * 1024


async def read_file(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


async def write_atomically(path: Path, *parts: AsyncIterable[bytes]) -> int:
    """Write the parts one after another to ``path`` via a temporary file, so a crash never
    leaves a half-written file behind. Returns the bytes written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    size = 0
    try:
        with temporary.open("wb") as handle:
            for part in parts:
                async for chunk in part:
                    handle.write(chunk)
                    size += len(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return size
