"""Grounding documents split into chunks, and chunks rotated into prompts.

Chunks end at a paragraph or sentence boundary where one falls in the chunk's last third,
so a prompt rarely gets half a sentence. Request ``n`` of a cell gets chunks
``n*k .. n*k+k-1`` (modulo the number of chunks), shifted per cell: every chunk is used
about as often, and consecutive requests of a cell see different ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from datamill.generation.spec import Grounding


@dataclass(frozen=True, slots=True)
class Chunk:
    document: str  # the document's id (or its position)
    index: int  # within the document
    text: str


def split_text(text: str, size: int) -> list[str]:
    """``text`` in pieces of at most ``size`` characters, cut at a boundary where possible."""
    pieces: list[str] = []
    text = text.strip()
    while len(text) > size:
        window = text[:size]
        cut = -1
        for boundary in ("\n\n", "\n", ". ", "; ", " "):
            position = window.rfind(boundary, size * 2 // 3)
            if position > 0:
                cut = position + len(boundary)
                break
        cut = cut if cut > 0 else size
        pieces.append(text[:cut].strip())
        text = text[cut:].strip()
    if text:
        pieces.append(text)
    return pieces


def chunk_documents(grounding: Grounding) -> list[Chunk]:
    chunks: list[Chunk] = []
    for position, document in enumerate(grounding.documents):
        name = document.id or f"doc{position}"
        for index, piece in enumerate(split_text(document.text or "", grounding.chunk_chars)):
            chunks.append(Chunk(name, index, piece))
    return chunks


def chunks_for(chunks: list[Chunk], per_prompt: int, *, cell: str, index: int) -> list[Chunk]:
    """The chunks request ``index`` of ``cell`` gets."""
    if not chunks:
        return []
    shift = int.from_bytes(hashlib.sha256(cell.encode()).digest()[:4], "big")
    count = min(per_prompt, len(chunks))
    start = shift + index * count
    return [chunks[(start + k) % len(chunks)] for k in range(count)]
