"""The review workflow through the HTTP API with real keys, on both stores: two reviewers
with an overlap of 2, the final state by rule and by adjudication, edits, blind mode, the
queue raced, assignments and reservations, a foreign project's sample, the export filtered
by review state, and the answers' checks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from datamill.protocol.access import Role
from datamill.storage.events import EventRow
from datamill.storage.schema import DEFAULT_PROJECT_ID, events
from datamill.webhooks.messages import message_of
from tests.api.conftest import Api, assert_error
from tests.api.test_authorization import make_key
from tests.api.test_datasets import import_rows, row
from tests.engine.conftest import OffsetClock


@dataclass
class Team:
    api: Api
    dataset_id: str
    sample_ids: list[str]  # in creation order
    keys: dict[str, tuple[str, str]]  # name -> (key, key id)

    def as_(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name][0]}"}

    def id_of(self, name: str) -> str:
        return self.keys[name][1]

    async def post(self, name: str, path: str, body: Any = None, **kw: Any) -> Any:
        response = await self.api.client.post(
            f"/api/datasets/{self.dataset_id}{path}", json=body, headers=self.as_(name), **kw
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def get(self, name: str, path: str, **params: Any) -> Any:
        response = await self.api.client.get(
            f"/api/datasets/{self.dataset_id}{path}", params=params, headers=self.as_(name)
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def settings(self, **body: Any) -> Any:
        response = await self.api.client.put(
            f"/api/datasets/{self.dataset_id}/review", json=body, headers=self.as_("member")
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def review(self, name: str, sample_id: str, decision: str, **body: Any) -> Any:
        answers = {"decision": decision, **body.pop("answers", {})}
        if decision == "reject":
            body.setdefault("reason", "wrong answer")
        return await self.post(name, f"/samples/{sample_id}/reviews", {"answers": answers, **body})

    async def next(self, name: str, limit: int) -> list[str]:
        taken = await self.post(name, "/review/next", {"limit": limit})
        return [item["sample"]["id"] for item in taken["data"]]


async def make_team(api: Api, samples: int = 4) -> Team:
    keys = {
        "alice": await make_key(api, DEFAULT_PROJECT_ID, Role.reviewer),
        "bob": await make_key(api, DEFAULT_PROJECT_ID, Role.reviewer),
        "member": await make_key(api, DEFAULT_PROJECT_ID, Role.member),
    }
    headers = {"Authorization": f"Bearer {keys['member'][0]}"}
    created = await api.client.post("/api/datasets", json={"name": "faq"}, headers=headers)
    dataset_id = created.json()["id"]
    api.client.headers.update(headers)  # the helpers' import and list as the member
    await import_rows(api, dataset_id, [row(f"question {n}?") for n in range(samples)])
    listed = await api.client.get(f"/api/datasets/{dataset_id}/samples", params={"order": "asc"})
    del api.client.headers["Authorization"]
    return Team(api, dataset_id, [s["id"] for s in listed.json()["data"]], keys)


@pytest.fixture
async def team(make_api) -> Team:
    return await make_team(await make_api())


async def state_of(team: Team, sample_id: str) -> str:
    found = await team.get("member", f"/samples/{sample_id}/reviews")
    return str(found["review_state"])


async def test_two_reviewers_agree_disagree_and_an_adjudication_decides(team: Team):
    settings = await team.settings(overlap=2)
    assert (settings["overlap"], settings["blind"], settings["rule"]) == (2, True, "majority")
    first, second = team.sample_ids[:2]
    # Overlap 2: both reviewers get the same samples.
    assert await team.next("alice", 2) == [first, second]
    assert await team.next("bob", 2) == [first, second]

    one = await team.review("alice", first, "approve", answers={"rating": 5})
    assert (one["review_state"], one["created"]) == ("in_review", True)
    both = await team.review("bob", first, "approve")
    assert both["review_state"] == "approved"

    await team.review("alice", second, "approve")
    split = await team.review("bob", second, "reject", reason="off topic")
    assert split["review_state"] == "disputed"
    assert split["review"]["reason"] == "off topic"

    # Only a member adjudicates; their decision overrides the tie.
    refused = await team.api.client.post(
        f"/api/datasets/{team.dataset_id}/samples/{second}/reviews",
        json={"answers": {"decision": "approve"}, "adjudication": True},
        headers=team.as_("alice"),
    )
    assert_error(refused, 403, param=None, code="insufficient_role")
    decided = await team.review("member", second, "reject", adjudication=True)
    assert decided["review_state"] == "rejected"

    history = await team.get("member", f"/samples/{second}/review-history")
    assert [(e["action"], e["reviewer"]) for e in history["data"]] == [
        ("submitted", team.id_of("alice")),
        ("submitted", team.id_of("bob")),
        ("adjudicated", team.id_of("member")),
    ]
    progress = await team.get("bob", "/review")
    assert progress["counts"] == {
        "unreviewed": 2,
        "in_review": 0,
        "approved": 1,
        "edited": 0,
        "rejected": 1,
        "disputed": 0,
    }
    by_reviewer = {r["reviewer"]: r for r in progress["reviewers"]}
    assert (
        by_reviewer[team.id_of("bob")]["approvals"],
        by_reviewer[team.id_of("bob")]["rejections"],
    ) == (1, 1)
    assert by_reviewer[team.id_of("member")]["adjudications"] == 1


async def test_unanimous_needs_all_and_a_lower_overlap_decides_again(team: Team):
    await team.settings(overlap=2, rule="unanimous")
    sample = team.sample_ids[0]
    await team.review("alice", sample, "approve")
    assert (await team.review("bob", sample, "reject"))["review_state"] == "disputed"
    # Settings decide every reviewed sample again.
    await team.settings(rule="majority", overlap=3)
    assert await state_of(team, sample) == "in_review"


async def test_a_review_with_an_edit_makes_the_sample_edited_with_a_history_version(team: Team):
    sample = team.sample_ids[0]
    content = {"question": "question 0?", "answer": "a better answer"}
    written = await team.review("alice", sample, "approve", content=content)
    assert (written["review_state"], written["review"]["edited"]) == ("edited", True)
    got = await team.get("alice", f"/samples/{sample}")
    assert got["content"] == content
    versions = (await team.get("alice", f"/samples/{sample}/history"))["data"]
    assert [(v["action"], v["changed_by"]) for v in versions] == [
        ("created", None),
        ("edited", team.id_of("alice")),
    ]
    # An edit to another live sample's content is refused, and nothing is written.
    clash = await team.api.client.post(
        f"/api/datasets/{team.dataset_id}/samples/{team.sample_ids[1]}/reviews",
        json={"answers": {"decision": "approve"}, "content": content},
        headers=team.as_("bob"),
    )
    assert_error(clash, 409, param="content", code="duplicate_sample")
    assert await state_of(team, team.sample_ids[1]) == "unreviewed"


async def test_blind_mode_hides_others_reviews_until_one_reviews(team: Team):
    await team.settings(overlap=2)
    sample = team.sample_ids[0]
    await team.review("alice", sample, "reject", reason="typo")

    unseen = await team.get("bob", f"/samples/{sample}/reviews")
    assert (unseen["data"], unseen["review_state"]) == ([], None)
    assert (await team.get("bob", f"/samples/{sample}/review-history"))["data"] == []
    [item] = (await team.post("bob", "/review/next", {"limit": 1}))["data"]
    assert (item["sample"]["id"], item["review_state"]) == (sample, None)
    assert [q["name"] for q in item["questions"]] == ["decision", "rating", "comment"]
    queue = await team.get("bob", "/review/queue")
    assert [q["review_state"] for q in queue["data"]] == [None] * 4
    filtered = await team.api.client.get(
        f"/api/datasets/{team.dataset_id}/review/queue",
        params={"review_state": "in_review"},
        headers=team.as_("bob"),
    )
    assert_error(filtered, 403, param=None, code="review_blind")
    # Nor do the sample lists and exports tell a reviewer the states.
    for path in ("samples", "export"):
        listed = await team.api.client.get(
            f"/api/datasets/{team.dataset_id}/{path}",
            params={"review_state": "in_review"},
            headers=team.as_("bob"),
        )
        assert_error(listed, 403, param=None, code="review_blind")
    assert (await team.get("bob", "/samples"))["data"]
    # A member sees everything.
    seen = await team.get("member", f"/samples/{sample}/reviews")
    assert (len(seen["data"]), seen["review_state"]) == (1, "in_review")

    await team.review("bob", sample, "reject", reason="typo too")
    after = await team.get("bob", f"/samples/{sample}/reviews")
    assert (len(after["data"]), after["review_state"]) == (2, "rejected")

    await team.settings(blind=False)
    open_ = await team.get("alice", f"/samples/{team.sample_ids[0]}/reviews")
    assert len(open_["data"]) == 2
    assert (await team.get("bob", "/review/queue"))["data"][0]["review_state"] == "rejected"
    rejected = await team.get("bob", "/samples", review_state="rejected")
    assert [s["id"] for s in rejected["data"]] == [sample]


async def test_racing_next_calls_never_exceed_the_overlap(make_api):
    api = await make_api()
    team = await make_team(api, samples=12)
    reviewers = {}
    for n in range(4):
        reviewers[f"r{n}"] = await make_key(api, DEFAULT_PROJECT_ID, Role.reviewer)
    team.keys.update(reviewers)

    got = await asyncio.gather(*(team.next(name, 5) for name in reviewers for _ in range(2)))
    # Overlap 1: every sample to at most one reviewer; 4 reviewers x 5 asks the 12.
    taken = [sample for batch in got for sample in batch]
    assert sorted(set(taken)) == sorted(team.sample_ids)
    # Each reviewer's two calls may return what they hold; no sample has two holders.
    names = [name for name in reviewers for _ in range(2)]
    holders = {}
    for name, batch in zip(names, got, strict=True):
        for sample in batch:
            holders.setdefault(sample, set()).add(name)
    assert all(len(who) == 1 for who in holders.values()), holders

    # Overlap 2: at most two holders each.
    await team.post("member", "/review/release", {})
    for name in reviewers:
        await team.post(name, "/review/release", {})
    await team.settings(overlap=2)
    got = await asyncio.gather(*(team.next(name, 12) for name in reviewers))
    count: dict[str, int] = {}
    for batch in got:
        for sample in batch:
            count[sample] = count.get(sample, 0) + 1
    assert set(count.values()) == {2}
    assert len(count) == 12


async def test_assignments_come_first_and_reservations_are_released_or_expire(make_api):
    clock = OffsetClock()
    api = await make_api(clock=clock)
    team = await make_team(api, samples=3)
    last = team.sample_ids[-1]
    assigned = await team.post(
        "member", "/review/assign", {"reviewer": team.id_of("bob"), "sample_ids": [last]}
    )
    assert assigned["assigned"] == 1
    unknown = await team.api.client.post(
        f"/api/datasets/{team.dataset_id}/review/assign",
        json={"reviewer": "key_nobody", "all": True},
        headers=team.as_("member"),
    )
    assert_error(unknown, 404, param="reviewer", code="not_found")
    # Naming no samples is refused, not every sample assigned.
    for body in (
        {"reviewer": team.id_of("bob")},
        {"reviewer": "local", "sample_ids": [], "all": True},
    ):
        unnamed = await team.api.client.post(
            f"/api/datasets/{team.dataset_id}/review/assign", json=body, headers=team.as_("member")
        )
        assert unnamed.status_code in (400, 422), unnamed.text
    # Assigned to bob, it counts toward alice's overlap of 1.
    assert await team.next("alice", 3) == team.sample_ids[:2]
    assert await team.next("bob", 3) == [last]
    released = await team.post("alice", "/review/release", {"sample_ids": [team.sample_ids[0]]})
    assert released["released"] == 1
    assert await team.next("bob", 3) == [last, team.sample_ids[0]]
    progress = await team.get("member", "/review")
    bob = next(r for r in progress["reviewers"] if r["reviewer"] == team.id_of("bob"))
    assert (bob["assigned"], bob["open_reservations"]) == (1, 2)
    # Reservations lapse; the assignment stays.
    clock.jump(901)
    assert await team.next("alice", 3) == team.sample_ids[:2]
    queue = await team.get("member", "/review/queue")
    claims = {q["sample_id"]: [c["reviewer"] for c in q["claims"]] for q in queue["data"]}
    assert claims[last] == [team.id_of("bob")]
    assert claims[team.sample_ids[0]] == [team.id_of("alice")]


async def test_resubmitting_replaces_and_the_same_review_is_written_once(team: Team):
    sample = team.sample_ids[0]
    first = await team.review("alice", sample, "approve")
    again = await team.review("alice", sample, "approve")
    assert (again["created"], again["review"]["id"]) == (False, first["review"]["id"])
    keyed = {"headers": {**team.as_("alice"), "Idempotency-Key": "k-1"}}
    body = {"answers": {"decision": "reject"}, "reason": "no"}
    url = f"/api/datasets/{team.dataset_id}/samples/{sample}/reviews"
    one = await team.api.client.post(url, json=body, **keyed)
    two = await team.api.client.post(url, json=body, **keyed)
    assert one.status_code == two.status_code == 200, two.text
    assert (two.json()["created"], two.json()["review"]["id"]) == (
        False,
        one.json()["review"]["id"],
    )
    other = await team.api.client.post(url, json={**body, "reason": "else"}, **keyed)
    assert_error(other, 409, param="Idempotency-Key", code="idempotency_key_reused")

    current = await team.get("alice", f"/samples/{sample}/reviews")
    assert [r["decision"] for r in current["data"]] == ["reject"]
    assert current["review_state"] == "rejected"
    history = await team.get("alice", f"/samples/{sample}/review-history")
    assert [(e["action"], e["review"]["current"]) for e in history["data"]] == [
        ("submitted", False),
        ("replaced", True),
    ]
    progress = await team.get("member", "/review")
    assert progress["reviewers"][0]["reviews"] == 1


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"answers": {"decision": "maybe"}}, "answers.decision", "invalid_answer"),
        ({"answers": {"decision": "reject"}}, "reason", "missing_reason"),
        ({"answers": {"rating": 3}}, "answers.decision", "missing_answer"),
        ({"answers": {"decision": "approve", "rating": 7}}, "answers.rating", "invalid_answer"),
        ({"answers": {"decision": "approve", "mood": "ok"}}, "answers.mood", "unknown_question"),
        ({"answers": {"decision": "approve"}, "extra": 1}, "extra", None),
    ],
)
async def test_answers_are_checked_against_the_schema(team: Team, body, param, code):
    response = await team.api.client.post(
        f"/api/datasets/{team.dataset_id}/samples/{team.sample_ids[0]}/reviews",
        json=body,
        headers=team.as_("alice"),
    )
    assert response.status_code in (400, 422), response.text
    error = response.json()["error"]
    assert param in (error["param"] or ""), error
    if code is not None:
        assert error["code"] == code
    assert await state_of(team, team.sample_ids[0]) == "unreviewed"


async def test_another_projects_sample_is_404(team: Team):
    beta = await team.api.runtime.auth.create_project("beta")
    stranger, _ = await make_key(team.api, beta.id, Role.admin)
    headers = {"Authorization": f"Bearer {stranger}"}
    base = f"/api/datasets/{team.dataset_id}"
    sample = team.sample_ids[0]
    client = team.api.client
    for response in (
        await client.post(
            f"{base}/samples/{sample}/reviews",
            json={"answers": {"decision": "approve"}},
            headers=headers,
        ),
        await client.get(f"{base}/samples/{sample}/reviews", headers=headers),
        await client.post(f"{base}/review/next", json={"limit": 1}, headers=headers),
        await client.get(f"{base}/review/queue", headers=headers),
    ):
        assert response.status_code == 404, response.text
    assert await state_of(team, sample) == "unreviewed"


async def test_gold_answers_are_stored_and_hidden_from_reviewers(team: Team):
    sample = team.sample_ids[0]
    response = await team.api.client.put(
        f"/api/datasets/{team.dataset_id}/samples/{sample}/gold",
        json={"answers": {"decision": "reject", "rating": 1}},
        headers=team.as_("member"),
    )
    assert response.status_code == 200, response.text
    refused = await team.api.client.get(
        f"/api/datasets/{team.dataset_id}/review/gold", headers=team.as_("alice")
    )
    assert refused.status_code == 403
    [gold] = (await team.get("member", "/review/gold"))["data"]
    assert (gold["sample_id"], gold["answers"]) == (sample, {"decision": "reject", "rating": 1})
    [item] = (await team.post("alice", "/review/next", {"limit": 1}))["data"]
    assert "gold" not in orjson.dumps(item).decode()
    gone = await team.api.client.delete(
        f"/api/datasets/{team.dataset_id}/samples/{sample}/gold", headers=team.as_("member")
    )
    assert gone.status_code == 200, gone.text
    assert (await team.get("member", "/review/gold"))["data"] == []


async def test_the_export_and_lists_filter_by_review_state(team: Team):
    approved, edited, rejected, _ = team.sample_ids
    await team.review("alice", approved, "approve")
    await team.review("alice", edited, "approve", content={"question": "q?", "answer": "e"})
    await team.review("alice", rejected, "reject")
    params = [("review_state", "approved"), ("review_state", "edited")]
    export = await team.api.client.get(
        f"/api/datasets/{team.dataset_id}/export", params=params, headers=team.as_("member")
    )
    assert export.status_code == 200, export.text
    lines = [orjson.loads(line) for line in export.content.splitlines()]
    assert sorted(line["content"]["question"] for line in lines) == ["q?", "question 0?"]
    listed = await team.get("member", "/samples", review_state="unreviewed")
    assert [s["id"] for s in listed["data"]] == [team.sample_ids[3]]
    bad = await team.api.client.get(
        f"/api/datasets/{team.dataset_id}/samples",
        params={"review_state": "nice"},
        headers=team.as_("member"),
    )
    assert bad.status_code in (400, 422)
    deleted = await team.post("member", "/samples/delete", {"review_state": ["rejected"]})
    assert deleted["changed"] == 1


async def test_the_last_final_review_publishes_review_completed(team: Team):
    for sample in team.sample_ids[:-1]:
        await team.review("alice", sample, "approve")
    await team.review("alice", team.sample_ids[-1], "reject")
    await team.api.runtime.events.flush()
    async with team.api.runtime.database.read() as conn:
        rows = (await conn.execute(select(events).where(events.c.topic == "review"))).all()
    kinds = [orjson.loads(r.payload)["type"] for r in rows]
    assert kinds == ["review"] * 4 + ["completed"]
    done = EventRow(**{c: getattr(rows[-1], c) for c in EventRow.__dataclass_fields__})
    found = message_of(done)
    assert found is not None
    event_type, key, data = found
    assert event_type == "review.completed"
    assert key.startswith(f"review.completed:{team.dataset_id}:")
    assert data["counts"] == {"approved": 3, "rejected": 1}
    # Review events say that a review came, never what it said (blind mode).
    assert "decision" not in rows[0].payload
    assert "approve" not in rows[0].payload


async def test_a_deleted_sample_is_not_reviewed_nor_offered(team: Team):
    sample = team.sample_ids[0]
    deleted = await team.api.client.delete(
        f"/api/datasets/{team.dataset_id}/samples/{sample}", headers=team.as_("member")
    )
    assert deleted.status_code == 200, deleted.text
    refused = await team.api.client.post(
        f"/api/datasets/{team.dataset_id}/samples/{sample}/reviews",
        json={"answers": {"decision": "approve"}},
        headers=team.as_("alice"),
    )
    assert_error(refused, 409, param="sample_id", code="sample_deleted")
    assert sample not in await team.next("alice", 10)
    queue = await team.get("member", "/review/queue")
    assert sample not in [q["sample_id"] for q in queue["data"]]
