"""Exports follow each sample's task schema, on both stores: the chat mapping (the export's
own parameters win), the ICL template, the table columns of `export.fields`, a dataset mixing
sample types; and a finished export sends its `export.completed` webhook, verified with the
`standardwebhooks` reference library."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from datamill.runtime import Role
from tests.api.conftest import Api
from tests.api.test_datasets import create
from tests.api.test_webhooks import FAST, SIM, create_endpoint, receiver, verified  # noqa: F401

QA = {
    "name": "qa",
    "content": {"type": "object", "required": ["question", "answer"]},
    "chat": {"system": "Be brief.", "user_field": "question", "assistant_field": "answer.text"},
    "icl": {"template": "Q: {question}\nA: {answer.text} {{done}}"},
    "export": {"fields": ["question", "answer.text"]},
}
CONVERSATION = {"name": "conversation", "chat": {"messages_field": "dialog"}}
DIALOG = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


async def setup(api: Api) -> str:
    for schema in (QA, CONVERSATION):
        response = await api.client.post("/api/task-schemas", json=schema)
        assert response.status_code == 200, response.text
    dataset_id = (await create(api))["id"]
    url = f"/api/datasets/{dataset_id}/samples"
    for body in (
        {
            "sample_type": "qa",
            "content": {"question": "2+2?", "answer": {"text": "4", "why": "sum"}},
        },
        {"sample_type": "conversation", "content": {"dialog": DIALOG}},
        {"content": {"prompt": "untyped?", "completion": "default mapping"}},
    ):
        added = await api.client.post(url, json=body)
        assert added.status_code == 200, added.text
    return dataset_id


async def export(api: Api, dataset_id: str, **params: Any) -> bytes:
    response = await api.client.get(f"/api/datasets/{dataset_id}/export", params=params)
    assert response.status_code == 200, response.text
    return response.content


@pytest.fixture
async def api(make_api) -> Api:
    return await make_api()


async def test_each_sample_is_mapped_by_its_own_schema(api: Api):
    dataset_id = await setup(api)
    lines = [
        orjson.loads(x) for x in (await export(api, dataset_id, format="openai-chat")).splitlines()
    ]
    assert lines == [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4"},
            ]
        },
        {"messages": DIALOG},
        {
            "messages": [
                {"role": "user", "content": "untyped?"},
                {"role": "assistant", "content": "default mapping"},
            ]
        },
    ]

    # The export's own fields win over the schema's; the schema's system stays.
    overridden = await export(
        api,
        dataset_id,
        format="openai-chat",
        sample_type="qa",
        user_field="question",
        assistant_field="answer.why",
    )
    [line] = [orjson.loads(x) for x in overridden.splitlines()]
    assert [m["content"] for m in line["messages"]] == ["Be brief.", "2+2?", "sum"]
    system = await export(api, dataset_id, format="openai-chat", sample_type="qa", system="Terse.")
    assert orjson.loads(system)["messages"][0] == {"role": "system", "content": "Terse."}

    icl = (await export(api, dataset_id, format="icl")).decode()
    assert icl.startswith("### Example 1\nQ: 2+2?\nA: 4 {done}\n\n### Example 2\nUser: hi\n")


async def test_table_exports_carry_the_schema_fields_as_columns(api: Api):
    dataset_id = await setup(api)
    rows = list(csv.DictReader(io.StringIO((await export(api, dataset_id, format="csv")).decode())))
    # The first page's fields: the schema's for qa, the top-level keys of the others.
    assert list(rows[0])[6:11] == ["question", "answer.text", "dialog", "prompt", "completion"]
    assert (rows[0]["question"], rows[0]["answer.text"], rows[0]["content_other"]) == (
        "2+2?",
        "4",
        "",
    )
    assert (rows[1]["dialog"], rows[1]["question"]) == (orjson.dumps(DIALOG).decode(), "")

    table = pq.read_table(io.BytesIO(await export(api, dataset_id, format="parquet")))
    assert table.column_names[-2:] == ["question", "answer.text"]
    assert table.column("answer.text").to_pylist() == ["4", None, None]
    assert orjson.loads(table.column("content").to_pylist()[0])["answer"]["why"] == "sum"


async def test_a_finished_export_sends_export_completed(make_api, receiver):  # noqa: F811
    api = await make_api(SIM, **FAST)
    hook = await receiver([200])
    endpoint = await create_endpoint(api, hook.url, event_types=["export.completed"])
    api.runtime.start_side_tasks(Role.worker)
    dataset_id = await setup(api)
    # A check is no export: it sends nothing.
    checked = await api.client.get(f"/api/datasets/{dataset_id}/export/check")
    assert checked.status_code == 200, checked.text
    await export(api, dataset_id, format="openai-chat", sample_type="qa")
    await api.runtime.events.flush()
    await hook.wait(1)
    headers, body = hook.received[0]
    message = verified(endpoint["secret"], headers, body)
    assert message["type"] == "export.completed"
    data = message["data"]
    assert data["id"].startswith("exp_")
    assert (data["dataset_id"], data["format"], data["filters"]) == (
        dataset_id,
        "openai-chat",
        {"sample_type": "qa"},
    )
    assert data["counts"] == {"samples": 1, "exported": 1, "left_out": 0}
    assert len(hook.received) == 1
