"""Stored sample embeddings: each sample embedded once per model and content.

A vector is kept as float16 bytes (2 per dimension) under (sample id, model), with
the `normalized_hash` of the content it was computed from. Guarantees:

- `stored_vectors` only answers vectors whose content hash is the one asked for: an edited
  sample (another hash) reads as not embedded, so its new content is embedded again;
- `sample_vectors` runs the model only on samples with no stored vector for their content,
  and stores what it computed: the one place that decides whether a stored sample is
  embedded, for generation jobs refilling their index and for dataset dedup alike;
- `store_vectors` replaces a sample's vector for the model (an upsert), so writing the same
  vectors twice, or from two runners racing, leaves one row each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from datamill.nlp.canonical import sample_text
from datamill.nlp.embeddings import TextEmbedder, Vectors
from datamill.storage.database import Database, upsert_insert
from datamill.storage.samples import SampleRecord
from datamill.storage.schema import sample_embeddings

# Rows per statement: 5 parameters each stays far below both stores' limits.
CHUNK = 500
VECTOR_DTYPE = np.float16


@dataclass(frozen=True, slots=True)
class StoredVector:
    """One sample's vector for a model, and the content hash it was computed from."""

    sample_id: str
    content_hash: str
    vector: npt.NDArray[np.floating]


def _to_bytes(vector: npt.NDArray[np.floating]) -> bytes:
    return np.asarray(vector, dtype=VECTOR_DTYPE).tobytes()


async def store_vectors(
    database: Database, rows: Sequence[StoredVector], *, model: str, now: float
) -> None:
    """Write (or replace) each sample's vector for ``model``."""
    if not rows:
        return
    insert = upsert_insert(database.dialect)
    async with database.write() as conn:
        for start in range(0, len(rows), CHUNK):
            values = [
                {
                    "sample_id": row.sample_id,
                    "model": model,
                    "content_hash": row.content_hash,
                    "vector": _to_bytes(row.vector),
                    "created_at": now,
                }
                for row in rows[start : start + CHUNK]
            ]
            statement = insert(sample_embeddings).values(values)
            statement = statement.on_conflict_do_update(
                index_elements=["sample_id", "model"],
                set_={
                    "content_hash": statement.excluded.content_hash,
                    "vector": statement.excluded.vector,
                    "created_at": statement.excluded.created_at,
                },
            )
            await conn.execute(statement)


async def stored_vectors(
    database: Database, wanted: Sequence[tuple[str, str]], *, model: str, dimension: int
) -> dict[str, npt.NDArray[np.float32]]:
    """The stored float32 vector of each ``(sample id, content hash)`` asked for, by sample
    id; samples without one for ``model`` and that content are left out."""
    found: dict[str, npt.NDArray[np.float32]] = {}
    hashes = dict(wanted)
    ids = list(hashes)
    async with database.read() as conn:
        for start in range(0, len(ids), CHUNK):
            query = sample_embeddings.select().where(
                sample_embeddings.c.model == model,
                sample_embeddings.c.sample_id.in_(ids[start : start + CHUNK]),
            )
            for row in await conn.execute(query):
                if row.content_hash != hashes[row.sample_id]:
                    continue  # computed from an earlier content of the sample
                vector = np.frombuffer(row.vector, dtype=VECTOR_DTYPE)
                if len(vector) == dimension:
                    found[row.sample_id] = vector.astype(np.float32)
    return found


@dataclass(frozen=True, slots=True)
class SampleVectors:
    texts: list[str]  # what is embedded: `nlp.canonical.sample_text` of each content
    vectors: Vectors  # (samples, the model's dimension) float32, in the samples' order
    embedded: int  # computed now (then stored)
    reused: int  # read back
    # The confirming model's vectors stored for these samples' contents, by sample id.
    confirmed: dict[str, npt.NDArray[np.float32]]


async def sample_vectors(
    database: Database,
    embedder: TextEmbedder,
    samples: Sequence[SampleRecord],
    *,
    now: float,
    confirm: TextEmbedder | None = None,
) -> SampleVectors:
    """The vectors of ``samples`` under ``embedder.name``: read back where stored for the
    sample's content, else embedded (in a worker thread: ``aembed``) and stored. With
    ``confirm`` (a dedup index's confirming model), also the vectors stored under its
    name: those are computed only when a pair needs them (`store_confirmed`)."""
    confirmed: dict[str, npt.NDArray[np.float32]] = {}
    if confirm is not None:
        confirmed = await stored_vectors(
            database,
            [(s.id, s.content_hash) for s in samples],
            model=confirm.name,
            dimension=confirm.dimension,
        )
    texts = [sample_text(s.content) for s in samples]
    stored = await stored_vectors(
        database,
        [(s.id, s.content_hash) for s in samples],
        model=embedder.name,
        dimension=embedder.dimension,
    )
    vectors = np.empty((len(samples), embedder.dimension), dtype=np.float32)
    missing = [n for n, s in enumerate(samples) if s.id not in stored]
    for n, sample in enumerate(samples):
        if sample.id in stored:
            vectors[n] = stored[sample.id]
    if missing:
        computed = await embedder.aembed([texts[n] for n in missing])
        # As stored: a later run reading them back decides exactly as this one.
        computed = computed.astype(VECTOR_DTYPE).astype(np.float32)
        vectors[missing] = computed
        await store_vectors(
            database,
            [
                StoredVector(samples[n].id, samples[n].content_hash, vector)
                for n, vector in zip(missing, computed, strict=True)
            ],
            model=embedder.name,
            now=now,
        )
    return SampleVectors(texts, vectors, len(missing), len(samples) - len(missing), confirmed)


async def store_confirmed(
    database: Database,
    confirm: TextEmbedder,
    vectors: Sequence[tuple[str, npt.NDArray[np.floating]]],
    contents: Mapping[str, tuple[str, str]],
    *,
    now: float,
) -> None:
    """Store confirming vectors a dedup index computed (its ``take_confirmed``): each
    ``(key, vector)`` whose key ``contents`` maps to ``(sample id, content hash)``; the
    others (samples not stored) are left out."""
    rows = [StoredVector(*contents[key], vector) for key, vector in vectors if key in contents]
    await store_vectors(database, rows, model=confirm.name, now=now)
