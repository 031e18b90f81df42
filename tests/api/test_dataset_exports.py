"""Fine-tuning exports through the HTTP API, on both stores: OpenAI chat JSONL (the mapping,
samples failing the data-preparation guide's checks left out and reported by
`/export/check`), the in-context-learning prompt file, CSV, and seeded splits."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
import pytest

from datamill.curation import exporting
from datamill.curation.exports import ExportOptions
from datamill.curation.formats.splits import parse_splits
from datamill.curation.lookups import SampleQuery
from datamill.protocol.datasets import ExportFormat
from tests.api.conftest import Api, assert_error
from tests.api.test_datasets import create, import_rows, row


@pytest.fixture
async def api(make_api) -> Api:
    return await make_api()


async def export(api: Api, dataset_id: str, **params: Any) -> bytes:
    response = await api.client.get(f"/api/datasets/{dataset_id}/export", params=params)
    assert response.status_code == 200, response.text
    return response.content


def guide_errors(line: dict[str, Any]) -> list[str]:
    """The format checks of OpenAI's chat fine-tuning data-preparation guide, written again
    here from its description (independent of `curation.formats.checks`)."""
    problems = []
    messages = line.get("messages")
    if not isinstance(messages, list) or len(messages) == 0:
        return ["no messages"]
    for m in messages:
        if set(m) - {"role", "content", "name", "function_call", "weight"}:
            problems.append("unrecognized key")
        if "role" not in m or "content" not in m:
            problems.append("missing key")
        if m.get("role") not in ("system", "user", "assistant", "function"):
            problems.append("bad role")
        if not (isinstance(m.get("content"), str) and m["content"]) and "function_call" not in m:
            problems.append("missing content")
    if all(m.get("role") != "assistant" for m in messages):
        problems.append("no assistant message")
    return problems


CHAT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
SAMPLES = [
    {"content": {"messages": CHAT}},  # used as is
    row("What is a prime?"),  # question/answer fields
    {"content": {"title": "Primes"}, "provenance": {"prompt": "Write a title about primes"}},
    {"content": {"title": "No prompt"}},  # unmapped
    {"content": {"messages": [{"role": "robot", "content": "beep"}]}},  # bad role, no assistant
    {"content": {"messages": [{"role": "user", "content": ""}, CHAT[1]]}},  # empty content
    {"content": {"messages": [{**CHAT[0], "tool_calls": []}, CHAT[1]]}},  # unrecognized key
    {"content": {"prompt": "Long", "completion": "word " * 20_000}},  # over the token limit
]


async def test_an_openai_chat_export_passes_the_guides_checks(api: Api):
    dataset_id = (await create(api))["id"]
    await import_rows(api, dataset_id, SAMPLES)

    body = await export(api, dataset_id, format="openai-chat")
    check = await api.client.get(f"/api/datasets/{dataset_id}/export/check")

    lines = [orjson.loads(line) for line in body.splitlines()]
    assert [guide_errors(line) for line in lines] == [[]] * 4
    assert lines[0] == {"messages": CHAT}
    assert lines[1] == {
        "messages": [
            {"role": "user", "content": "What is a prime?"},
            {"role": "assistant", "content": "What is a prime?!"},
        ]
    }
    assert lines[2]["messages"] == [
        {"role": "user", "content": "Write a title about primes"},
        {"role": "assistant", "content": '{"title":"Primes"}'},
    ]
    report = check.json()
    assert check.status_code == 200
    assert (report["object"], report["samples"], report["exported"]) == (
        "dataset.export_check",
        8,
        4,
    )
    assert report["left_out"] == {
        "unmapped": 1,
        "unrecognized_role": 1,
        "example_missing_assistant_message": 1,
        "missing_content": 1,
        "message_unrecognized_key": 1,
    }
    assert [s["errors"] for s in report["left_out_samples"]] == [
        ["unmapped"],
        ["unrecognized_role", "example_missing_assistant_message"],
        ["missing_content"],
        ["message_unrecognized_key"],
    ]
    assert report["warnings"] == {"over_token_limit": 1, "missing_system_message": 4}
    assert report["tokens"]["max"] > report["token_limit"] == 16_385
    assert isinstance(report["tokens"]["p50"], int)
    assert report["assistant_tokens"]["min"] >= 1
    assert report["epochs"] == 25  # 4 examples: the default aims at 100 example-epochs
    assert report["billing_tokens"] < 25 * 4 * 16_385


async def test_the_chat_mapping_takes_fields_and_a_system_message(api: Api):
    dataset_id = (await create(api))["id"]
    await import_rows(
        api,
        dataset_id,
        [
            {"content": {"q": "2+2?", "a": 4}},
            {"content": {"q": "No answer"}},
            {"content": {"question": "ignored", "answer": "also", "q": "3+3?", "a": "6"}},
        ],
    )

    body = await export(
        api, dataset_id, format="openai-chat", user_field="q", assistant_field="a", system="Math."
    )
    check = await api.client.get(
        f"/api/datasets/{dataset_id}/export/check",
        params={"user_field": "q", "assistant_field": "a", "system": "Math."},
    )

    lines = [orjson.loads(line) for line in body.splitlines()]
    assert [line["messages"] for line in lines] == [
        [
            {"role": "system", "content": "Math."},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"},  # not text: JSON text
        ],
        [
            {"role": "system", "content": "Math."},
            {"role": "user", "content": "3+3?"},
            {"role": "assistant", "content": "6"},
        ],
    ]
    assert check.json()["left_out"] == {"unmapped": 1}
    assert check.json()["warnings"] == {}


async def test_an_icl_export_is_a_prompt_file_of_examples(api: Api):
    dataset_id = (await create(api))["id"]
    await import_rows(
        api,
        dataset_id,
        [row("What is 1+1?"), {"content": {"x": 1}}, {"content": {"messages": CHAT}}],
    )

    response = await api.client.get(
        f"/api/datasets/{dataset_id}/export?format=icl&system=Be brief."
    )

    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert 'filename="faq.txt"' in response.headers["content-disposition"]
    assert response.text == (
        "### Example 1\nSystem: Be brief.\nUser: What is 1+1?\nAssistant: What is 1+1?!\n\n"
        "### Example 2\nUser: Hi\nAssistant: Hello!\n\n"
    )


async def test_a_csv_export_flattens_the_content(api: Api, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(exporting, "EXPORT_PAGE", 2)  # the third sample comes in a later page
    dataset_id = (await create(api))["id"]
    await import_rows(
        api,
        dataset_id,
        [
            {"content": {"question": "Q1", "tags": ["a", "b"]}, "topic": "math", "model": "m"},
            {"content": {"question": 'Q2, "quoted"\nline', "id": 7}, "metadata": {"k": 1}},
            {"content": {"question": "Q3", "late": True}},
        ],
    )

    response = await api.client.get(f"/api/datasets/{dataset_id}/export?format=csv")

    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == [
        "id",
        "topic",
        "sample_type",
        "status",
        "model",
        "created_at",
        "question",
        "tags",
        "content.id",
        "content_other",
        "metadata",
        "provenance",
    ]
    assert [r["question"] for r in rows] == ["Q1", 'Q2, "quoted"\nline', "Q3"]
    assert [r["tags"] for r in rows] == ['["a","b"]', "", ""]
    assert [r["content.id"] for r in rows] == ["", "7", ""]
    assert [r["content_other"] for r in rows] == ["", "", '{"late":true}']
    assert [r["topic"] for r in rows] == ["math", "", ""]
    assert orjson.loads(rows[1]["metadata"]) == {"k": 1}
    assert orjson.loads(rows[0]["provenance"])["source"] == "import"
    assert rows[0]["id"].startswith("smp_")
    assert int(rows[0]["created_at"]) > 0


SPLITS = "train=0.6,validation=0.2,test=0.2"


async def split_ids(api: Api, dataset_id: str, split: str, seed: int = 7) -> list[str]:
    body = await export(api, dataset_id, splits=SPLITS, split=split, seed=seed)
    return [orjson.loads(line)["id"] for line in body.splitlines()]


async def test_splits_are_seeded_stable_and_byte_identical(api: Api):
    dataset_id = (await create(api))["id"]
    await import_rows(api, dataset_id, [row(f"q{i}") for i in range(200)])
    names = ("train", "validation", "test")

    before = {name: await split_ids(api, dataset_id, name) for name in names}
    again = await export(api, dataset_id, format="csv", splits=SPLITS, split="test", seed=7)
    await import_rows(api, dataset_id, [row(f"new{i}") for i in range(100)])
    after = {name: await split_ids(api, dataset_id, name) for name in names}
    other_seed = await split_ids(api, dataset_id, "train", seed=8)
    response = await api.client.get(
        f"/api/datasets/{dataset_id}/export",
        params={"format": "csv", "splits": SPLITS, "split": "test", "seed": 7},
    )

    everything = [i for name in names for i in before[name]]
    assert len(everything) == len(set(everything)) == 200  # each sample in one split
    assert 90 <= len(before["train"]) <= 150  # about 60%
    assert 'filename="faq.test.csv"' in response.headers["content-disposition"]
    # The samples there before stay in their split as the dataset grows (new ones come after).
    for name in names:
        assert after[name][: len(before[name])] == before[name]
    assert sum(len(after[name]) for name in names) == 300
    assert set(other_seed) != set(after["train"])
    # Byte for byte the same rows, then the samples added since.
    assert response.content.startswith(again)
    assert len(response.content) > len(again)


async def test_a_re_export_is_byte_identical(api: Api):
    dataset_id = (await create(api))["id"]
    await import_rows(api, dataset_id, [row(f"q{i}", topic="t") for i in range(50)])

    for fmt in ("jsonl", "openai-chat", "icl", "csv", "parquet"):
        params = {"format": fmt, "splits": SPLITS, "split": "validation", "seed": 3}
        assert await export(api, dataset_id, **params) == await export(api, dataset_id, **params)


@pytest.mark.parametrize("fmt", ["jsonl", "openai-chat", "icl", "csv", "parquet"])
async def test_all_splits_in_one_pass_are_the_single_split_exports(
    api: Api, fmt: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(exporting, "EXPORT_PAGE", 7)  # several pages, some splits empty in one
    dataset_id = (await create(api))["id"]
    await import_rows(api, dataset_id, [row(f"q{i}", topic="t") for i in range(40)])
    options = ExportOptions(splits=parse_splits(SPLITS), seed=5)

    _, reports, tagged = await api.runtime.datasets.export_splits(
        dataset_id, SampleQuery(), ExportFormat(fmt), options
    )
    joined: dict[str, bytes] = {name: b"" for name in reports}
    async for name, chunk in tagged:
        joined[name] += chunk

    for name in ("train", "validation", "test"):
        single = await export(api, dataset_id, format=fmt, splits=SPLITS, split=name, seed=5)
        assert joined[name] == single, name
    assert sum(report.exported for report in reports.values()) == 40


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"splits": "train=0.5,test=0.4", "split": "train"}, "splits"),  # adds up to 0.9
        ({"splits": "train=0.5,train=0.5", "split": "train"}, "splits"),
        ({"splits": "train:1", "split": "train"}, "splits"),
        ({"splits": "train=x,test=1", "split": "train"}, "splits"),
        ({"splits": "train=0.5,test=0.5"}, "split"),
        ({"splits": "train=0.5,test=0.5", "split": "dev"}, "split"),
        ({"split": "train"}, "splits"),
        ({"seed": "-1"}, "seed"),
        ({"format": "label_studio"}, "format"),
        ({"user_field": ""}, "user_field"),
    ],
)
async def test_bad_export_parameters_are_400s(api: Api, params: dict[str, str], param: str):
    dataset_id = (await create(api))["id"]

    for path in ("export", "export/check"):
        response = await api.client.get(f"/api/datasets/{dataset_id}/{path}", params=params)
        if path == "export/check" and param == "format":
            continue  # the check is of openai-chat: it takes no format
        assert_error(response, 400, param=param)


async def test_checking_an_unknown_dataset_is_a_404(api: Api):
    response = await api.client.get("/api/datasets/ds_nope/export/check")

    assert_error(response, 404, param="dataset_id")
