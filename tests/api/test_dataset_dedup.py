"""`POST /api/datasets/{id}/dedup` on both stores: a dry run reports and changes nothing;
a run deletes the later copies (restorable, the reason in their metadata), keeps
near-misses apart, reuses stored vectors, and finds nothing new the second time; a
selection is compared with the rest of the dataset; the event loop keeps serving while the
model runs; bad input is a 4xx."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from datamill.nlp.embeddings import Vectors
from datamill.nlp.static_embeddings import shared_static_embedder
from tests.api.conftest import Api, assert_error
from tests.api.test_datasets import create, import_rows, samples

ORIGINALS = [
    "Customers may request a refund within 30 days of purchase.",
    "The tenant may not sublet the apartment without written consent.",
    "What is the capital of France?",
    "Symptoms of influenza include fever and a sore throat.",
]
COPIES = {  # a later sample -> the original it repeats
    "A refund can be claimed up to 30 days after buying.": ORIGINALS[0],
    "Which city is the capital of France?": ORIGINALS[2],
    "Fever and a sore throat are signs of influenza.": ORIGINALS[3],
    "what is the capital of  France ?": ORIGINALS[2],  # near-verbatim
}
NEAR_MISSES = [  # kept: each differs from an original in a number, an entity, a negation
    "Customers may request a refund within 60 days of purchase.",
    "The tenant may sublet the apartment without written consent.",
    "What is the capital of Spain?",
]


def rows(texts: Sequence[str], **fields: Any) -> list[dict[str, Any]]:
    return [{"content": {"text": text}, **fields} for text in texts]


async def dedup(api: Api, dataset_id: str, **body: Any) -> dict[str, Any]:
    response = await api.client.post(f"/api/datasets/{dataset_id}/dedup", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_dataset_is_deduplicated_once_and_for_all(make_api):
    api = await make_api()
    dataset = (await create(api))["id"]
    await import_rows(api, dataset, rows(ORIGINALS + list(COPIES) + NEAR_MISSES))
    ids = {s["content"]["text"]: s["id"] for s in await samples(api, dataset, limit=100)}

    dry = await dedup(api, dataset, dry_run=True)

    expected = {ids[copy]: ids[original] for copy, original in COPIES.items()}
    found = {d["sample_id"]: g["kept"] for g in dry["groups"] for d in g["duplicates"]}
    assert found == expected
    assert dry["object"] == "dataset.dedup"
    assert (dry["scanned"], dry["duplicates"], dry["deleted"]) == (11, 4, 0)
    assert dry["embedded"] == 11
    assert dry["reused"] == 0
    assert dry["confirmed"] >= 1  # the transformer saw the pairs the static search found
    assert len(await samples(api, dataset, limit=100)) == 11  # a dry run changes nothing

    done = await dedup(api, dataset)

    assert done["embedded"] == 0
    assert done["reused"] == 11
    assert done["confirmed"] == 0  # the kept samples' transformer vectors were stored
    assert {d["sample_id"] for g in done["groups"] for d in g["duplicates"]} == set(expected)
    assert done["deleted"] == 4
    live = {s["id"] for s in await samples(api, dataset, limit=100)}
    assert live == set(ids.values()) - set(expected)
    copy = ids["Which city is the capital of France?"]
    deleted = (await api.client.get(f"/api/datasets/{dataset}/samples/{copy}")).json()
    assert deleted["deleted_at"] is not None
    reason = deleted["metadata"]["dedup"]
    assert reason["duplicate_of"] == ids[ORIGINALS[2]]
    assert reason["kind"] == "semantic"
    assert reason["score"] >= reason["threshold"] == 0.74

    again = await dedup(api, dataset)
    assert (again["scanned"], again["duplicates"], again["groups"]) == (7, 0, [])
    assert again["embedded"] == 0

    restored = await api.client.post(f"/api/datasets/{dataset}/samples/{copy}/restore")
    assert restored.status_code == 200, restored.text
    assert restored.json()["deleted_at"] is None


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_an_import_is_compared_with_the_rest_and_only_it_is_deleted(make_api):
    api = await make_api()
    dataset = (await create(api))["id"]
    await import_rows(api, dataset, rows(ORIGINALS, topic="old"))
    await import_rows(
        api, dataset, rows([*COPIES, "An unrelated new sample about tea."], topic="new")
    )

    report = await dedup(api, dataset, topic="new", dry_run=True)

    assert report["scanned"] == 5
    assert report["compared_with"] == 4
    assert report["duplicates"] == 4
    old = {s["id"] for s in await samples(api, dataset, topic="old")}
    assert {g["kept"] for g in report["groups"]} <= old


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_the_event_loop_serves_while_the_model_runs(make_api, monkeypatch):
    api = await make_api()
    dataset = (await create(api))["id"]
    await import_rows(api, dataset, rows(ORIGINALS))
    embedder = shared_static_embedder()  # the first model a dedup runs
    entered, release = threading.Event(), threading.Event()
    original = embedder.embed

    def held(texts: Sequence[str]) -> Vectors:
        entered.set()
        assert release.wait(30)
        return original(texts)

    monkeypatch.setattr(embedder, "embed", held)
    running = asyncio.create_task(dedup(api, dataset, dry_run=True))
    assert await asyncio.to_thread(entered.wait, 30)

    answered = await api.client.get(f"/api/datasets/{dataset}")  # while the model is held

    assert answered.status_code == 200
    assert not running.done()
    release.set()
    assert (await running)["scanned"] == 4


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"dry_run": True, "unknown": 1}, 400, "unknown"),
        ({"threshold": 1.5}, 400, "threshold"),
        ({"threshold": "high"}, 400, "threshold"),
        ({"status": "nope"}, 400, "status"),
    ],
)
async def test_bad_input_is_a_4xx_naming_the_field(make_api, body, status, param):
    api = await make_api()
    dataset = (await create(api))["id"]
    response = await api.client.post(f"/api/datasets/{dataset}/dedup", json=body)
    assert_error(response, status, param=param)
    missing = await api.client.post("/api/datasets/ds_nope/dedup", json={})
    assert_error(missing, 404, param="dataset_id")
