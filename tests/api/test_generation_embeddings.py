"""A generation job with near-dedup stores each accepted sample's embedding once, and a
resumed job refills its index from the stored vectors without running a model on the
samples it already has (both stores): not the static table, whose vectors every sample has,
nor the transformer, whose vectors are stored for the samples it confirmed a pair of."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest
from sqlalchemy import select

from datamill.nlp.canonical import sample_text
from datamill.nlp.embeddings import Embedder, Vectors, shared_embedder
from datamill.nlp.static_embeddings import StaticEmbedder, shared_static_embedder
from datamill.storage.schema import sample_embeddings, samples
from tests.api.test_generation import SLOW_SIM, running, spec, wait_for_job


async def _stored_vectors(api, dataset_id: str, model: str | None = None) -> int:
    return len(await _stored_ids(api, dataset_id, model or shared_static_embedder().name))


async def _stored_ids(api, dataset_id: str, model: str) -> set[str]:
    query = (
        select(sample_embeddings.c.sample_id)
        .select_from(sample_embeddings.join(samples, samples.c.id == sample_embeddings.c.sample_id))
        .where(samples.c.dataset_id == dataset_id, sample_embeddings.c.model == model)
    )
    async with api.runtime.database.read() as conn:
        return set((await conn.scalars(query)).all())


def _record(model: Embedder | StaticEmbedder, into: list[str], monkeypatch) -> None:
    original = model.embed

    def recording(texts: Sequence[str]) -> Vectors:
        into.extend(texts)
        return original(texts)

    monkeypatch.setattr(model, "embed", recording)


async def test_a_resumed_job_reads_its_vectors_back_instead_of_embedding(make_api, monkeypatch):
    transformer: Embedder = shared_embedder()
    embedded: list[str] = []  # by the static table: every new answer
    confirmed: list[str] = []  # by the transformer: the texts of pairs the table found
    _record(shared_static_embedder(), embedded, monkeypatch)
    _record(transformer, confirmed, monkeypatch)
    api = await make_api(SLOW_SIM, workers=1)
    body = spec(target={"per_cell": 6}, loop={"batch_size": 6}, dedup={"near": True})
    async with running(api):
        created = (
            await api.client.post(
                "/api/generation/jobs", json={"spec": body, "budget": {"requests": 1000}}
            )
        ).json()
        deadline = time.monotonic() + 60
        while (await wait_for_job(api, created["id"], {"running"}))["accepted"] < 4:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await api.client.post(f"/api/generation/jobs/{created['id']}/stop")
        history = f"/api/generation/jobs/{created['id']}/history"
        while (await api.client.get(history)).json()["data"][-1]["outcome"] != "stopped":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        job = (await api.client.get(f"/api/generation/jobs/{created['id']}")).json()
        listed = await api.client.get(f"/api/datasets/{job['dataset_id']}/samples?limit=1000")
        before = {sample_text(s["content"]) for s in listed.json()["data"]}
        assert len(before) == job["accepted"] >= 4
        assert await _stored_vectors(api, job["dataset_id"]) == len(before)
        with_transformer = await _stored_ids(api, job["dataset_id"], transformer.name)
        never_confirmed = {
            sample_text(s["content"])
            for s in listed.json()["data"]
            if s["id"] not in with_transformer
        }
        embedded.clear()
        confirmed.clear()

        resumed = await api.client.post(f"/api/generation/jobs/{created['id']}/resume", json={})
        assert resumed.status_code == 200, resumed.text
        job = await wait_for_job(api, created["id"], {"completed", "failed"}, timeout=90)

    assert job["status"] == "completed", job
    assert embedded, "the new answers are embedded"
    assert before.isdisjoint(embedded), "a sample kept before the stop was embedded again"
    # The transformer sees an earlier sample only if it never confirmed a pair of it before.
    assert before.intersection(confirmed) <= never_confirmed
    assert await _stored_vectors(api, job["dataset_id"]) == 24


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_samples_without_a_stored_vector_are_embedded_once_then_stored(make_api):
    """A dataset filled before vectors were stored (or by an import): the first refill
    embeds and stores, the second reads."""
    from datamill.generation.job import fill_from_store
    from datamill.nlp.dedup import NearDuplicateIndex
    from datamill.storage import samples as sample_repo
    from datamill.storage.datasets import insert_dataset
    from datamill.storage.samples import NewSample, SampleFilter
    from datamill.storage.schema import DEFAULT_PROJECT_ID

    api = await make_api()
    database = api.runtime.database
    dataset = await insert_dataset(
        database,
        dataset_id="ds_vectors",
        project_id=DEFAULT_PROJECT_ID,
        name="v",
        description=None,
        now=1.0,
    )
    rows = [
        NewSample(content={"text": f"Sample number {n} about {w}."})
        for n, w in enumerate(["tea", "coffee", "maps", "rivers"])
    ]
    await sample_repo.insert_samples(database, dataset.id, rows, now=1.0)
    records, _ = await sample_repo.list_samples(database, dataset.id, SampleFilter(), limit=10)

    class Counting(Embedder):
        calls = 0

        def embed(self, texts: Sequence[str]) -> Vectors:
            Counting.calls += len(texts)
            return shared_embedder().embed(texts)

    first = NearDuplicateIndex(Counting())
    await fill_from_store(database, first, records, now=2.0)
    assert Counting.calls == 4
    second = NearDuplicateIndex(Counting())
    await fill_from_store(database, second, records, now=3.0)
    assert Counting.calls == 4  # nothing embedded the second time
    assert len(second) == 4
    assert second.check("Sample number 2 about maps.") is not None
