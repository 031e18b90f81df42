"""`/api/datasets` end to end through the HTTP API, on both stores: datasets, samples,
search, random samples, soft delete and restore, and every bad input a 4xx naming its field."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.api.conftest import Api, assert_error


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


async def create(api: Api, name: str = "faq", **body: Any) -> dict[str, Any]:
    response = await api.client.post("/api/datasets", json={"name": name, **body})
    assert response.status_code == 200, response.text
    return response.json()


async def import_rows(api: Api, dataset_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    response = await api.client.post(
        f"/api/datasets/{dataset_id}/import", files={"file": ("s.jsonl", jsonl(rows))}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def samples(api: Api, dataset_id: str, **params: Any) -> list[dict[str, Any]]:
    response = await api.client.get(f"/api/datasets/{dataset_id}/samples", params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def row(question: str, **fields: Any) -> dict[str, Any]:
    return {"content": {"question": question, "answer": f"{question}!"}, **fields}


ROWS = [
    row("What is a prime number?", topic="math", sample_type="qa", model="m1"),
    row("Name an even prime", topic="math", sample_type="qa", model="m2"),
    row("Who painted the Mona Lisa?", topic="art", sample_type="qa", model="m1"),
    row("Tell me about Cubism", topic="art", sample_type="chat"),
]


@pytest.fixture
async def api(make_api) -> Api:
    return await make_api()


async def test_dataset_lifecycle(api: Api):
    created = await create(api, "faq", description="questions")
    dataset_id = created["id"]
    assert dataset_id.startswith("ds_")
    assert (created["object"], created["name"], created["sample_count"]) == ("dataset", "faq", 0)

    await import_rows(api, dataset_id, ROWS)
    got = (await api.client.get(f"/api/datasets/{dataset_id}")).json()
    renamed = await api.client.patch(
        f"/api/datasets/{dataset_id}", json={"name": "faq-v2", "description": None}
    )
    listed = (await api.client.get("/api/datasets")).json()
    deleted = await api.client.delete(f"/api/datasets/{dataset_id}")
    hidden = await api.client.get(f"/api/datasets/{dataset_id}")
    samples_hidden = await api.client.get(f"/api/datasets/{dataset_id}/samples")
    trash = (await api.client.get("/api/datasets", params={"deleted": "only"})).json()
    restored = await api.client.post(f"/api/datasets/{dataset_id}/restore")

    stats = got["stats"]
    assert got["sample_count"] == stats["samples"] == 4
    assert stats["by_topic"] == [{"value": "art", "count": 2}, {"value": "math", "count": 2}]
    assert stats["by_sample_type"] == [
        {"value": "qa", "count": 3},
        {"value": "chat", "count": 1},
    ]
    assert stats["by_model"] == [
        {"value": "m1", "count": 2},
        {"value": "m2", "count": 1},
        {"value": None, "count": 1},
    ]
    assert stats["cells"][0] == {"topic": "math", "sample_type": "qa", "count": 2}
    assert renamed.json()["name"] == "faq-v2"
    assert renamed.json()["description"] is None
    assert [(d["id"], d["sample_count"]) for d in listed["data"]] == [(dataset_id, 4)]
    assert deleted.json() == {"id": dataset_id, "object": "dataset.deleted", "deleted": True}
    assert_error(hidden, 404, param="dataset_id", code="not_found")
    assert_error(samples_hidden, 404, param="dataset_id", code="not_found")
    assert [d["id"] for d in trash["data"]] == [dataset_id]
    assert trash["data"][0]["deleted_at"] is not None
    assert restored.status_code == 200
    assert restored.json()["deleted_at"] is None
    assert len(await samples(api, dataset_id)) == 4  # the samples came back with it


async def test_dataset_names_and_their_conflicts(api: Api):
    first = await create(api, "faq")
    other = await create(api, "other")

    taken = await api.client.post("/api/datasets", json={"name": "faq"})
    rename = await api.client.patch(f"/api/datasets/{other['id']}", json={"name": "faq"})
    await api.client.delete(f"/api/datasets/{first['id']}")
    reused = await create(api, "faq")
    restore = await api.client.post(f"/api/datasets/{first['id']}/restore")

    assert_error(taken, 409, param="name", code="dataset_name_taken")
    assert_error(rename, 409, param="name", code="dataset_name_taken")
    assert reused["id"] != first["id"]
    assert_error(restore, 409, param="dataset_id", code="dataset_name_taken")


BAD_INPUTS = [
    ("POST", "/api/datasets", {}, "name"),
    ("POST", "/api/datasets", {"name": ""}, "name"),
    ("POST", "/api/datasets", {"name": "has space"}, "name"),
    ("POST", "/api/datasets", {"name": "ds_sneaky"}, "name"),
    ("POST", "/api/datasets", {"name": "x" * 101}, "name"),
    ("POST", "/api/datasets", {"name": "ok", "colour": "red"}, "colour"),
    ("POST", "/api/datasets", {"name": "ok", "description": 5}, "description"),
    ("POST", "/api/datasets", [1, 2], None),
    ("PATCH", "/api/datasets/{id}", {"name": None}, "name"),
    ("PATCH", "/api/datasets/{id}", {"name": "a/b"}, "name"),
    ("GET", "/api/datasets?limit=0", None, "limit"),
    ("GET", "/api/datasets?deleted=maybe", None, "deleted"),
    ("GET", "/api/datasets/{id}?deleted=only", None, "deleted"),
    ("GET", "/api/datasets/{id}/samples?limit=1001", None, "limit"),
    ("GET", "/api/datasets/{id}/samples?random=0", None, "random"),
    ("GET", "/api/datasets/{id}/samples?random=2&after=smp_x", None, "after"),
    ("GET", "/api/datasets/{id}/samples?status=great", None, "status"),
    ("GET", "/api/datasets/{id}/samples?created_after=-1", None, "created_after"),
    ("GET", "/api/datasets/{id}/samples?created_before=nan", None, "created_before"),
    ("GET", "/api/datasets/{id}/samples?created_after=yesterday", None, "created_after"),
    ("GET", "/api/datasets/{id}/samples?order=up", None, "order"),
    ("GET", "/api/datasets/{id}/samples?deleted=all", None, "deleted"),
    ("GET", "/api/datasets/{id}/samples?q=-only", None, "q"),
    ("GET", "/api/datasets/{id}/samples?q=%22%22", None, "q"),
    ("GET", "/api/datasets/{id}/export?format=xml", None, "format"),
    ("GET", "/api/datasets/{id}/export?q=", None, "q"),
    ("POST", "/api/datasets/{id}/samples/delete", {}, "all"),
    ("POST", "/api/datasets/{id}/samples/delete", {"ids": []}, "ids"),
    ("POST", "/api/datasets/{id}/samples/delete", {"topic": "x", "typo": 1}, "typo"),
    ("POST", "/api/datasets/{id}/samples/restore", {"status": "nope"}, "status"),
    ("POST", "/api/datasets/{id}/samples/restore", {"q": "-x"}, "q"),
    ("POST", "/api/datasets/{id}/samples/restore", {"created_after": -5}, "created_after"),
    ("POST", "/api/datasets/{id}/samples/delete", {"topic": "a\u0000b"}, "topic"),
    # A lone surrogate, as JSON can escape it: not storable text.
    ("POST", "/api/datasets", b'{"name": "ok", "description": "\\ud800"}', "description"),
    ("GET", "/api/datasets/{id}/samples?model=%00", None, "model"),
    ("GET", "/api/datasets/{id}/samples?after=%00", None, "after"),
    # Every route refuses a NUL in its path (PostgreSQL's text cannot hold one).
    ("GET", "/api/datasets/ds_%00", None, "dataset_id"),
    ("GET", "/api/datasets/{id}/samples/smp_%00", None, "sample_id"),
]


async def test_bad_input_is_a_400_naming_the_field(api: Api):
    # One store for every case (each would cost a fresh PostgreSQL database otherwise).
    dataset = await create(api)
    await import_rows(api, dataset["id"], ROWS[:1])

    for method, path, body, param in BAD_INPUTS:
        sent = {"content": body} if isinstance(body, bytes) else {"json": body}
        response = await api.client.request(
            method,
            path.replace("{id}", dataset["id"]),
            headers={"content-type": "application/json"},
            **sent,
        )
        try:
            assert_error(response, 400, param=param)
        except AssertionError as failed:
            raise AssertionError(f"{method} {path} {body!r}: {failed}") from None


UNKNOWN_IDS = [
    ("GET", "/api/datasets/ds_nope", "dataset_id"),
    ("PATCH", "/api/datasets/ds_nope", "dataset_id"),
    ("DELETE", "/api/datasets/ds_nope", "dataset_id"),
    ("POST", "/api/datasets/ds_nope/restore", "dataset_id"),
    ("GET", "/api/datasets/ds_nope/samples", "dataset_id"),
    ("GET", "/api/datasets/ds_nope/export", "dataset_id"),
    ("POST", "/api/datasets/ds_nope/import", "dataset_id"),
    ("GET", "/api/datasets/{id}/samples/smp_nope", "sample_id"),
    ("DELETE", "/api/datasets/{id}/samples/smp_nope", "sample_id"),
    ("POST", "/api/datasets/{id}/samples/smp_nope/restore", "sample_id"),
]


async def test_unknown_ids_are_404s_naming_the_id(api: Api):
    dataset = await create(api)

    for method, path, param in UNKNOWN_IDS:
        kwargs: dict[str, Any] = {}
        if method == "PATCH":
            kwargs["json"] = {"description": "x"}
        if path.endswith("/import"):
            kwargs["files"] = {"file": ("s.jsonl", jsonl(ROWS))}
        response = await api.client.request(method, path.replace("{id}", dataset["id"]), **kwargs)
        try:
            assert_error(response, 404, param=param, code="not_found")
        except AssertionError as failed:
            raise AssertionError(f"{method} {path}: {failed}") from None


async def test_filters_search_and_pages(api: Api):
    dataset_id = (await create(api))["id"]
    await import_rows(api, dataset_id, ROWS)

    async def questions(**params: Any) -> list[str]:
        found = await samples(api, dataset_id, **params)
        return [s["content"]["question"] for s in found]

    assert await questions(order="asc") == [r["content"]["question"] for r in ROWS]
    assert await questions(topic="art", order="asc") == [
        "Who painted the Mona Lisa?",
        "Tell me about Cubism",
    ]
    assert await questions(model="m1", sample_type="qa", order="asc") == [
        "What is a prime number?",
        "Who painted the Mona Lisa?",
    ]
    assert await questions(q="prime") == ["Name an even prime", "What is a prime number?"]
    assert await questions(q='"prime number" -even') == ["What is a prime number?"]
    assert await questions(q="PRIME", topic="art") == []
    assert await questions(status="accepted", topic="math", order="asc") == [
        "What is a prime number?",
        "Name an even prime",
    ]

    first = (await api.client.get(f"/api/datasets/{dataset_id}/samples?limit=3")).json()
    rest = (
        await api.client.get(
            f"/api/datasets/{dataset_id}/samples", params={"limit": 3, "after": first["last_id"]}
        )
    ).json()
    assert (len(first["data"]), first["has_more"]) == (3, True)
    assert (len(rest["data"]), rest["has_more"]) == (1, False)
    assert rest["data"][0]["content"]["question"] == ROWS[0]["content"]["question"]


async def test_random_samples(api: Api):
    dataset_id = (await create(api))["id"]
    await import_rows(
        api, dataset_id, [row(f"q{i}", topic="a" if i < 10 else "b") for i in range(30)]
    )

    picks = [
        {s["content"]["question"] for s in await samples(api, dataset_id, random=3, topic="a")}
        for _ in range(10)
    ]
    everything = await samples(api, dataset_id, random=100, topic="b")

    assert all(len(p) == 3 and p <= {f"q{i}" for i in range(10)} for p in picks)
    assert len({frozenset(p) for p in picks}) > 1  # C(10, 3) = 120 subsets: rarely all one
    assert sorted(s["content"]["question"] for s in everything) == sorted(
        f"q{i}" for i in range(10, 30)
    )


async def test_one_sample_deleted_and_restored(api: Api):
    dataset_id = (await create(api))["id"]
    await import_rows(api, dataset_id, ROWS[:2])
    first = (await samples(api, dataset_id, order="asc"))[0]
    path = f"/api/datasets/{dataset_id}/samples/{first['id']}"

    deleted = (await api.client.delete(path)).json()
    again = (await api.client.delete(path)).json()
    still_readable = (await api.client.get(path)).json()
    live = await samples(api, dataset_id)
    trash = await samples(api, dataset_id, deleted="only")
    stats = (await api.client.get(f"/api/datasets/{dataset_id}")).json()["stats"]
    await import_rows(api, dataset_id, [ROWS[0]])  # the same content, live again
    refused = await api.client.post(f"{path}/restore")

    assert deleted["deleted_at"] is not None
    assert again["deleted_at"] == deleted["deleted_at"]
    assert still_readable["id"] == first["id"]
    assert [s["id"] for s in trash] == [first["id"]]
    assert first["id"] not in [s["id"] for s in live]
    assert (stats["samples"], stats["deleted_samples"]) == (1, 1)
    assert_error(refused, 409, param="sample_id", code="duplicate_sample")

    copy = next(s for s in await samples(api, dataset_id) if s["id"] != live[0]["id"])
    await api.client.delete(f"/api/datasets/{dataset_id}/samples/{copy['id']}")
    restored = (await api.client.post(f"{path}/restore")).json()
    assert restored["deleted_at"] is None
    assert restored["provenance"] == {
        "source": "import",
        "input_tokens": 0,
        "output_tokens": 0,
        "cost": 0.0,
    }


async def test_samples_deleted_and_restored_by_filter(api: Api):
    dataset_id = (await create(api))["id"]
    await import_rows(api, dataset_id, ROWS)
    base = f"/api/datasets/{dataset_id}/samples"

    by_topic = (await api.client.post(f"{base}/delete", json={"topic": "art"})).json()
    by_search = (await api.client.post(f"{base}/delete", json={"q": "even prime"})).json()
    left = await samples(api, dataset_id)
    back = (await api.client.post(f"{base}/restore", json={"q": "cubism"})).json()
    everything = (await api.client.post(f"{base}/delete", json={"all": True})).json()
    all_back = (await api.client.post(f"{base}/restore", json={"all": True})).json()

    assert (by_topic["changed"], by_search["changed"]) == (2, 1)
    assert [s["content"]["question"] for s in left] == ["What is a prime number?"]
    assert (back["changed"], back["skipped"]) == (1, 0)
    assert everything["changed"] == 2
    assert all_back["changed"] == 4
    assert len(await samples(api, dataset_id)) == 4


async def test_no_input_gives_a_server_error(api: Api):
    # Odd but well-formed inputs: answered, never with a 5xx.
    dataset_id = (await create(api))["id"]
    await import_rows(api, dataset_id, ROWS)
    paths = [
        f"/api/datasets/{dataset_id}/samples?q=%00",
        f"/api/datasets/{dataset_id}/samples?q=" + "%22" * 50,
        f"/api/datasets/{dataset_id}/samples?q=a%20OR%20b%20NEAR%20c*",
        f"/api/datasets/{dataset_id}/samples?topic=%00&created_after=1e300",
        f"/api/datasets/{dataset_id}/samples?after=' OR 1=1 --",
        f"/api/datasets/{dataset_id}/samples/..%2F..",
        "/api/datasets?after=%F0%9F%98%80",
        f"/api/datasets/{dataset_id}/export?q=%E2%80%8B",
    ]
    for path in paths:
        response = await api.client.get(path)
        assert response.status_code < 500, (path, response.text)


async def test_the_routes_are_in_the_openapi_description(api: Api):
    paths = (await api.client.get("/openapi.json")).json()["paths"]

    assert (
        "multipart/form-data"
        in paths["/api/datasets/{dataset_id}/import"]["post"]["requestBody"]["content"]
    )


def test_the_error_body_of_an_import_lists_its_lines():
    from datamill.errors import InvalidLines

    error = InvalidLines(
        "2 of 3 lines are invalid",
        problems=[{"line": 2, "param": "content", "message": "m"}],
        code="invalid_import",
    )

    assert error.to_body()["error"]["line"] == 2
    assert error.to_body()["error"]["errors"] == [{"line": 2, "param": "content", "message": "m"}]
    assert isinstance(httpx.codes.BAD_REQUEST, int)
