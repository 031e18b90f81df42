"""Curation from end to end through the HTTP API, on both stores: a generation job fills a
dataset; two reviewers (their own keys) approve, edit, reject and disagree; the agreement
report shows the disagreement; the fine-tuning export filtered by review state holds exactly
the approved and edited samples (the edit as edited) and passes the data-preparation
checks."""

from __future__ import annotations

from typing import Any

import orjson

from datamill.protocol.access import Role
from datamill.storage.schema import DEFAULT_PROJECT_ID
from tests.api.conftest import Api
from tests.api.test_authorization import make_key
from tests.api.test_dataset_exports import guide_errors
from tests.api.test_generation import SIM, running, spec, wait_for_job

QA_SCHEMA = {
    "name": "qa",
    "content": {
        "type": "object",
        "required": ["question", "answer"],
        "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
    },
    "display": {"fields": [{"field": "question"}, {"field": "answer"}]},
    "chat": {"user_field": "question", "assistant_field": "answer", "system": "Be exact."},
}


async def test_generate_review_measure_agreement_and_export(make_api: Any) -> None:
    api: Api = await make_api(SIM, workers=1)
    keys = {
        name: await make_key(api, DEFAULT_PROJECT_ID, role)
        for name, role in (
            ("member", Role.member),
            ("alice", Role.reviewer),
            ("bob", Role.reviewer),
        )
    }

    def as_(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys[name][0]}"}

    async def call(name: str, method: str, path: str, **kw: Any) -> Any:
        response = await api.client.request(method, path, headers=as_(name), **kw)
        assert response.status_code == 200, response.text
        json_body = response.headers["content-type"].split(";")[0] == "application/json"
        return response.json() if json_body else response

    api.client.headers.update(as_("member"))  # wait_for_job's reads
    await call("member", "POST", "/api/task-schemas", json=QA_SCHEMA)
    job_spec = spec(sample_types=[spec()["sample_types"][0]], target={"per_cell": 3})
    async with running(api):
        job = await call("member", "POST", "/api/generation/jobs", json={"spec": job_spec})
        done = await wait_for_job(api, job["id"], {"completed"}, timeout=120)
    assert done["accepted"] == 6
    dataset = f"/api/datasets/{done['dataset_id']}"
    listed = await call("alice", "GET", f"{dataset}/samples", params={"limit": 100, "order": "asc"})
    samples = {s["id"]: s for s in listed["data"]}
    ids = [s["id"] for s in listed["data"]]
    assert len(ids) == 6
    assert all(s["sample_type"] == "qa" for s in samples.values())

    await call("member", "PUT", f"{dataset}/review", json={"overlap": 2, "rule": "majority"})
    for name in ("alice", "bob"):  # each takes the whole queue
        taken = await call(name, "POST", f"{dataset}/review/next", json={"limit": 6})
        assert {item["sample"]["id"] for item in taken["data"]} == set(ids)

    edited_answer = samples[ids[1]]["content"]["answer"] + " (Checked by a lawyer.)"
    plan = {  # sample -> (alice's review, bob's review)
        ids[0]: ({"decision": "approve"}, {"decision": "approve"}),
        ids[1]: (
            {
                "decision": "approve",
                "content": {**samples[ids[1]]["content"], "answer": edited_answer},
            },
            {"decision": "approve"},
        ),
        ids[2]: ({"decision": "reject"}, {"decision": "reject"}),
        ids[3]: ({"decision": "approve"}, {"decision": "reject"}),  # they disagree
        ids[4]: ({"decision": "approve", "rating": 5}, {"decision": "approve", "rating": 4}),
    }  # ids[5]: nobody reviews it
    for sample_id, reviews in plan.items():
        for name, review in zip(("alice", "bob"), reviews, strict=True):
            body: dict[str, Any] = {"answers": {"decision": review["decision"]}}
            if "rating" in review:
                body["answers"]["rating"] = review["rating"]
            if review["decision"] == "reject":
                body["reason"] = "the answer misstates the law"
            if "content" in review:
                body["content"] = review["content"]
            await call(name, "POST", f"{dataset}/samples/{sample_id}/reviews", json=body)

    states = {
        s["sample_id"]: s["review_state"]
        for s in (await call("member", "GET", f"{dataset}/review/queue"))["data"]
    }
    assert [states[i] for i in ids] == [
        "approved",
        "edited",
        "rejected",
        "disputed",
        "approved",
        "unreviewed",
    ]
    history = await call("member", "GET", f"{dataset}/samples/{ids[1]}/history")
    assert [v["changed_by"] for v in history["data"]][-1] == keys["alice"][1]

    report = await call("member", "GET", f"{dataset}/review/agreement")
    decision = next(q for q in report["questions"] if q["question"] == "decision")
    assert (report["item_count"], report["reviewer_count"]) == (5, 2)
    assert decision["items_compared"] == 5
    assert decision["observed_agreement"] == {"value": 0.8, "reason": None, "pairs": 5}
    # 4 of 5 agree; alice approved 4 of 5, bob 3 of 5: kappa = (0.8 - 0.56) / (1 - 0.56)
    assert abs(decision["cohen_kappa"]["value"] - 0.24 / 0.44) < 1e-9
    assert decision["krippendorff_alpha"]["value"] < decision["observed_agreement"]["value"]
    rating = next(q for q in report["questions"] if q["question"] == "rating")
    assert rating["observed_agreement"]["value"] == 0.0  # a 5 against a 4
    by_reviewer = {r["reviewer_id"]: r for r in report["reviewers"]}
    assert (by_reviewer[keys["alice"][1]]["approved"], by_reviewer[keys["bob"][1]]["rejected"]) == (
        4,
        2,
    )

    kept = {"review_state": ["approved", "edited"]}
    exported = await call(
        "member", "GET", f"{dataset}/export", params={"format": "openai-chat", **kept}
    )
    lines = [orjson.loads(line) for line in exported.content.splitlines()]
    expected = [ids[0], ids[1], ids[4]]
    assert [line["messages"] for line in lines] == [
        [
            {"role": "system", "content": "Be exact."},
            {"role": "user", "content": samples[i]["content"]["question"]},
            {
                "role": "assistant",
                "content": edited_answer if i == ids[1] else samples[i]["content"]["answer"],
            },
        ]
        for i in expected
    ]
    assert [guide_errors(line) for line in lines] == [[], [], []]
    check = await call("member", "GET", f"{dataset}/export/check", params=kept)
    assert (check["samples"], check["exported"], check["left_out"]) == (3, 3, {})


async def test_the_agreement_report_is_for_members(make_api: Any) -> None:
    api: Api = await make_api()
    member = await make_key(api, DEFAULT_PROJECT_ID, Role.member)
    reviewer = await make_key(api, DEFAULT_PROJECT_ID, Role.reviewer)
    headers = {"Authorization": f"Bearer {member[0]}"}
    made = await api.client.post("/api/datasets", json={"name": "blind"}, headers=headers)
    path = f"/api/datasets/{made.json()['id']}/review/agreement"

    refused = await api.client.get(path, headers={"Authorization": f"Bearer {reviewer[0]}"})
    assert refused.status_code == 403
    empty = await api.client.get(path, headers=headers)
    assert empty.status_code == 200, empty.text
    # No review yet: the questions of the schema its samples default to, each undefined.
    decision = empty.json()["questions"][0]
    assert (empty.json()["item_count"], decision["question"]) == (0, "decision")
    assert decision["krippendorff_alpha"]["reason"] == "too_few_ratings"


async def test_before_any_review_the_report_lists_the_questions_of_the_samples_schemas(
    make_api: Any,
) -> None:
    api: Api = await make_api()
    schema = {
        "name": "faq",
        "review": {"questions": [{"name": "verdict", "kind": "decision"}]},
    }
    assert (await api.client.post("/api/task-schemas", json=schema)).status_code == 200
    made = (await api.client.post("/api/datasets", json={"name": "faqs"})).json()
    added = await api.client.post(
        f"/api/datasets/{made['id']}/samples",
        json={"content": {"q": "Why?"}, "sample_type": "faq"},
    )
    assert added.status_code == 200, added.text

    report = await api.client.get(f"/api/datasets/{made['id']}/review/agreement")

    assert report.status_code == 200, report.text
    assert [q["question"] for q in report.json()["questions"]] == ["verdict"]
