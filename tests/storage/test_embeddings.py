"""Stored sample embeddings on both stores: written once, replaced on upsert, and never
read back for a content they were not computed from."""

from __future__ import annotations

import numpy as np

from datamill.nlp.canonical import normalized_hash
from datamill.storage import embeddings as repo
from datamill.storage.database import Database
from datamill.storage.embeddings import StoredVector
from tests.storage.test_samples import NOW, insert, new_dataset, sample

MODEL = "test-model"


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
    return vector / np.linalg.norm(vector)


async def test_vectors_are_read_back_for_their_content_only(database: Database):
    dataset = await new_dataset(database)
    rows = [sample("one"), sample("two"), sample("three")]
    ids = await insert(database, dataset, rows)
    hashes = [normalized_hash(row.content) for row in rows]
    await repo.store_vectors(
        database,
        [StoredVector(ids[n], hashes[n], unit(n)) for n in range(2)],  # not the third
        model=MODEL,
        now=NOW,
    )
    # Written twice (a second runner, a retry): still one row each, the newer vector.
    await repo.store_vectors(
        database, [StoredVector(ids[1], hashes[1], unit(7))], model=MODEL, now=NOW + 1
    )

    found = await repo.stored_vectors(
        database,
        [(ids[0], hashes[0]), (ids[1], hashes[1]), (ids[2], hashes[2])],
        model=MODEL,
        dimension=8,
    )
    assert set(found) == {ids[0], ids[1]}
    np.testing.assert_allclose(found[ids[0]], unit(0), atol=1e-3)  # float16 storage
    np.testing.assert_allclose(found[ids[1]], unit(7), atol=1e-3)
    # An edited sample has another hash: its old vector is not used.
    edited = await repo.stored_vectors(
        database, [(ids[0], normalized_hash({"question": "edited"}))], model=MODEL, dimension=8
    )
    assert edited == {}
    other_model = await repo.stored_vectors(
        database, [(ids[0], hashes[0])], model="another", dimension=8
    )
    assert other_model == {}
