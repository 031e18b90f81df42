"""Local files for the CLI: streamed reads, atomic writes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from pathlib import Path
from typing import BinaryIO

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


async def write_files_atomically(
    paths: Mapping[str, Path], chunks: AsyncIterable[tuple[str, bytes]]
) -> None:
    """Write each ``(key, chunk)`` to ``paths[key]``, every file via a temporary file, all
    put in place once the chunks end (none if they fail)."""
    temporaries = {key: p.with_name(f".{p.name}.{os.getpid()}.tmp") for key, p in paths.items()}
    handles: dict[str, BinaryIO] = {}
    try:
        for key, temporary in temporaries.items():
            temporary.parent.mkdir(parents=True, exist_ok=True)
            handles[key] = temporary.open("wb")
        async for key, chunk in chunks:
            handles[key].write(chunk)
        for handle in handles.values():
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        for key, temporary in temporaries.items():
            os.replace(temporary, paths[key])
    finally:
        for handle in handles.values():
            handle.close()
        for temporary in temporaries.values():
            temporary.unlink(missing_ok=True)
