"""`ReviewService` and `storage.reviews` on both stores: the queue's claims under real
concurrency (two stores' pools racing), a review and its edit in one transaction, a
reviewer's replaced review counted once, and settings that decide the states again."""

from __future__ import annotations

import asyncio

import pytest

from datamill.errors import Conflict
from datamill.protocol.datasets import DatasetCreate
from datamill.protocol.reviews import ReviewCreate, ReviewSettingsUpdate
from datamill.review.rules import final_state
from datamill.review.service import Reviewer
from datamill.runtime import Runtime
from datamill.storage import review_queue
from datamill.storage import reviews as repo
from datamill.storage.database import Database
from datamill.storage.samples import NewSample, insert_samples

ALICE, BOB = Reviewer("key_alice"), Reviewer("key_bob")


async def dataset_with(runtime: Runtime, count: int) -> tuple[str, list[str]]:
    view = await runtime.datasets.create(DatasetCreate(name="faq"))
    rows = [NewSample(content={"q": f"question {n}"}) for n in range(count)]
    ids = await insert_samples(runtime.database, view.record.id, rows, now=runtime.clock.now())
    return view.record.id, [i for i in ids if i is not None]


def approve(**fields: object) -> ReviewCreate:
    return ReviewCreate.model_validate({"answers": {"decision": "approve"}, **fields})


async def test_reservations_from_two_pools_never_exceed_the_overlap(make_runtime, store_url):
    runtime = await make_runtime()
    dataset_id, ids = await dataset_with(runtime, 30)
    await runtime.reviews.update_settings(dataset_id, ReviewSettingsUpdate(overlap=2))
    # Separate pools: on PostgreSQL the claims really run at once.
    others = [Database.open(store_url) for _ in range(3)]
    try:
        now = runtime.clock.now()
        claims = await asyncio.gather(
            *(
                review_queue.reserve_samples(db, dataset_id, f"key_{n}_{m}", limit=7, now=now)
                for n, db in enumerate([runtime.database, *others])
                for m in range(3)
            )
        )
    finally:
        for db in others:
            await db.dispose()
    holders: dict[str, int] = {}
    for claim in claims:
        for reserved in claim:
            holders[reserved.sample.id] = holders.get(reserved.sample.id, 0) + 1
    assert max(holders.values()) <= 2
    # 12 reviewers x 7 asked for 84 claims; 60 fit (30 samples x overlap 2).
    assert sum(holders.values()) == 60
    assert set(holders) == set(ids)


async def test_a_review_and_its_edit_are_one_write(make_runtime):
    runtime = await make_runtime()
    dataset_id, (first, second) = await dataset_with(runtime, 2)
    reviews = runtime.reviews
    # The first sample's content: refused, and neither the review nor a version is written.
    with pytest.raises(Conflict):
        await reviews.submit(dataset_id, second, approve(content={"q": "question 0"}), ALICE)
    assert await repo.sample_reviews(runtime.database, second) == []
    versions = await runtime.datasets.sample_history(dataset_id, second)
    assert len(versions) == 1

    written = await reviews.submit(dataset_id, first, approve(content={"q": "better"}), ALICE)
    assert (written.review_state, written.created) == ("edited", True)
    # Re-submitted without an edit, the one it replaced still stands in the content.
    again = await reviews.submit(
        dataset_id, first, approve(answers={"decision": "approve", "rating": 3}), ALICE
    )
    assert (again.review_state, again.created) == ("edited", True)
    versions = await runtime.datasets.sample_history(dataset_id, first)
    assert [(v.action, v.changed_by) for v in versions] == [
        ("created", None),
        ("edited", "key_alice"),
    ]


async def test_a_replaced_review_is_kept_and_counted_once(make_runtime):
    runtime = await make_runtime()
    dataset_id, (sample,) = await dataset_with(runtime, 1)
    reviews = runtime.reviews
    await reviews.update_settings(dataset_id, ReviewSettingsUpdate(overlap=2))
    await reviews.submit(dataset_id, sample, approve(), ALICE)
    reject = ReviewCreate(answers={"decision": "reject"}, reason="no")
    again = await reviews.submit(dataset_id, sample, reject, ALICE)
    assert again.review_state == "in_review"
    record = await runtime.datasets.get_sample(dataset_id, sample)
    assert record.review_count == 1
    every = await repo.sample_reviews(runtime.database, sample, current_only=False)
    assert [(r.decision, r.current) for r in every] == [("approve", False), ("reject", True)]
    done = await reviews.submit(dataset_id, sample, reject, BOB)
    assert done.review_state == "rejected"
    assert done.completed == {"rejected": 1}
    current = await reviews.dataset_reviews(dataset_id)
    assert [(r.reviewer, r.decision) for r in current] == [
        ("key_alice", "reject"),
        ("key_bob", "reject"),
    ]


async def test_new_settings_decide_every_reviewed_sample_again(make_runtime):
    runtime = await make_runtime()
    dataset_id, ids = await dataset_with(runtime, 3)
    reviews = runtime.reviews
    await reviews.update_settings(dataset_id, ReviewSettingsUpdate(overlap=2))
    await reviews.submit(dataset_id, ids[0], approve(), ALICE)
    await reviews.submit(dataset_id, ids[0], approve(), BOB)
    await reviews.submit(dataset_id, ids[1], approve(), ALICE)
    await reviews.update_settings(dataset_id, ReviewSettingsUpdate(overlap=1))
    settings, progress = await reviews.progress(dataset_id)
    assert settings.overlap == 1
    assert progress.counts == {"approved": 2, "unreviewed": 1}
    await reviews.update_settings(dataset_id, ReviewSettingsUpdate(overlap=3))
    assert (await reviews.progress(dataset_id))[1].counts == {"in_review": 2, "unreviewed": 1}
    # The queue offers the in-review samples again, never to who reviewed them.
    offered, _ = await reviews.next_samples(dataset_id, ALICE, limit=5)
    assert [item.sample.id for item in offered] == [ids[2]]
    assert final_state([], repo.ReviewSettings()) == "unreviewed"


async def test_assigning_by_a_filter_skips_what_the_reviewer_reviewed(make_runtime):
    from datamill.protocol.reviews import AssignRequest

    runtime = await make_runtime()
    dataset_id, ids = await dataset_with(runtime, 4)
    reviews = runtime.reviews
    await reviews.submit(dataset_id, ids[0], approve(), Reviewer("local"))
    body = AssignRequest(reviewer="local", review_state=["unreviewed", "approved"])
    assert await reviews.assign(dataset_id, body) == 3  # not the one it reviewed
    _, progress = await reviews.progress(dataset_id)
    assert [(r.reviewer, r.assigned, r.reviews) for r in progress.reviewers] == [("local", 3, 1)]
    offered, _ = await reviews.next_samples(dataset_id, Reviewer("local"), limit=10)
    assert [item.sample.id for item in offered] == ids[1:]
