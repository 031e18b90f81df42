"""The review queue of a 10,000-sample dataset, through the HTTP API (in-process ASGI).

    .venv/bin/python bench/review_queue.py [--samples 10000] [--reviewed 1000]
                                           [--postgres postgresql://...]

Fills a dataset (SQLite in a temporary directory, or the PostgreSQL database named), sets an
overlap of 2, has two reviewers review the first ``--reviewed`` samples (half agree, half
disagree) and a third reserve 50, then times, each the median and the worst of 20 calls:
the queue's first page, a page from the middle, a page filtered by review state, the last
page, and `review/next` (10 samples reserved, then released). Prints one line each:
``review_queue call=... samples=N median_ms=... max_ms=...``; the target is 300 ms a page.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable

import httpx

from datamill.api.app import create_app
from datamill.protocol.datasets import DatasetCreate
from datamill.protocol.reviews import ReviewCreate, ReviewSettingsUpdate
from datamill.review.service import Reviewer
from datamill.runtime import Runtime
from datamill.settings import load_settings
from datamill.storage.samples import INSERT_CHUNK, NewSample, analyze_samples, insert_samples

CALLS = 20


async def fill(runtime: Runtime, samples: int, reviewed: int) -> tuple[str, list[str]]:
    view = await runtime.datasets.create(DatasetCreate(name="queue"))
    dataset_id = view.record.id
    ids: list[str] = []
    for start in range(0, samples, INSERT_CHUNK):
        rows = [
            NewSample(content={"question": f"question {n}?", "answer": f"answer {n}."})
            for n in range(start, min(samples, start + INSERT_CHUNK))
        ]
        inserted = await insert_samples(runtime.database, dataset_id, rows, now=time.time())
        ids += [i for i in inserted if i is not None]
    reviews = runtime.reviews
    await reviews.update_settings(dataset_id, ReviewSettingsUpdate(overlap=2))
    approve = ReviewCreate(answers={"decision": "approve", "rating": 4})
    reject = ReviewCreate(answers={"decision": "reject"}, reason="wrong")
    for n, sample_id in enumerate(ids[:reviewed]):
        await reviews.submit(dataset_id, sample_id, approve, Reviewer("key_alice"))
        second = approve if n % 2 else reject
        await reviews.submit(dataset_id, sample_id, second, Reviewer("key_bob"))
    await reviews.next_samples(dataset_id, Reviewer("key_carol"), limit=50)
    await analyze_samples(runtime.database)
    return dataset_id, ids


async def timed(call: Callable[[], Awaitable[httpx.Response]]) -> tuple[float, float]:
    took = []
    for _ in range(CALLS):
        start = time.perf_counter()
        response = await call()
        took.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.text
    return statistics.median(took), max(took)


async def main(samples: int, reviewed: int, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "DATAMILL_HOME": tmp,
            "DATAMILL_DATABASE_URL": database_url or f"sqlite:///{tmp}/bench.db",
            "DATAMILL_AUTO_DEPLOYMENTS": "false",
        }
        runtime = await Runtime.open(load_settings(env))
        try:
            dataset_id, ids = await fill(runtime, samples, reviewed)
            app = create_app(runtime=runtime, workers=0)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
                base = f"/api/datasets/{dataset_id}/review"

                async def next_and_release() -> httpx.Response:
                    taken = await c.post(f"{base}/next", json={"limit": 10})
                    await c.post(f"{base}/release", json={})
                    return taken

                calls: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
                    "queue_first_page": lambda: c.get(f"{base}/queue", params={"limit": 100}),
                    "queue_middle_page": lambda: c.get(
                        f"{base}/queue", params={"after": ids[len(ids) // 2], "limit": 100}
                    ),
                    "queue_last_page": lambda: c.get(
                        f"{base}/queue", params={"after": ids[-50], "limit": 100}
                    ),
                    "queue_disputed": lambda: c.get(
                        f"{base}/queue", params={"review_state": "disputed", "limit": 100}
                    ),
                    "queue_unreviewed_middle": lambda: c.get(
                        f"{base}/queue",
                        params={
                            "review_state": "unreviewed",
                            "after": ids[len(ids) // 2],
                            "limit": 100,
                        },
                    ),
                    "next_10_and_release": next_and_release,
                }
                for name, call in calls.items():
                    median, worst = await timed(call)
                    print(
                        f"review_queue call={name} samples={len(ids)} "
                        f"median_ms={median:.1f} max_ms={worst:.1f}"
                    )
        finally:
            await runtime.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--reviewed", type=int, default=1_000)
    parser.add_argument("--postgres", help="a PostgreSQL URL to run on instead of SQLite")
    args = parser.parse_args()
    asyncio.run(main(args.samples, args.reviewed, args.postgres))
