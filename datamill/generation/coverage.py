"""The coverage report of a job (or of a dataset): counts per topic x type against targets,
rejections by reason, the duplicate rate, and diversity (mean pairwise embedding distance of
a sample of the texts, and distinct 1- and 2-grams)."""

from __future__ import annotations

import asyncio
from typing import Any

from datamill.nlp.canonical import sample_text
from datamill.storage import generation as repo
from datamill.storage import samples as sample_repo
from datamill.storage.database import Database
from datamill.storage.samples import SampleFilter

# Texts embedded for the mean pairwise distance, at most (a random sample beyond it).
MAX_EMBEDDED = 1000
_DUPLICATES = ("duplicate", "near_duplicate")


def job_coverage(job: repo.JobRecord, cells: list[repo.CellRecord]) -> dict[str, Any]:
    """The counts part of a job's report (no diversity: `add_diversity` adds it)."""
    reasons: dict[str, int] = {}
    for cell in cells:
        for reason, count in cell.rejections.items():
            reasons[reason] = reasons.get(reason, 0) + count
    duplicates = sum(reasons.get(r, 0) for r in _DUPLICATES)
    answers = sum(c.accepted for c in cells) + sum(reasons.values()) + sum(c.surplus for c in cells)
    target = sum(c.target for c in cells)
    accepted = sum(c.accepted for c in cells)
    return {
        "object": "generation.coverage",
        "job_id": job.id,
        "dataset_id": job.dataset_id,
        "status": job.status,
        "target": target,
        "accepted": accepted,
        "complete": accepted >= target,
        "cells_full": sum(c.accepted >= c.target for c in cells),
        "cells": [
            {
                "topic": c.topic,
                "sample_type": c.sample_type,
                "target": c.target,
                "accepted": c.accepted,
                "short": c.deficit,
                "in_flight": c.in_flight,
                "rejected": c.rejections,
                "surplus": c.surplus,
                "requests": c.requests,
                "cost": round(c.cost, 6),
            }
            for c in cells
        ],
        "rejected_by_reason": dict(sorted(reasons.items())),
        "answers": answers,
        "duplicates": duplicates,
        "duplicate_rate": round(duplicates / answers, 4) if answers else 0.0,
        "surplus": sum(c.surplus for c in cells),
        "requests": job.requests,
        "cost": round(job.cost, 6),
        "diversity": None,
    }


def dataset_coverage(
    dataset_id: str, counts: dict[tuple[str | None, str | None], int]
) -> dict[str, Any]:
    """The counts part of a dataset's report: samples per topic x type, no targets."""
    cells = [
        {"topic": topic, "sample_type": sample_type, "accepted": count}
        for (topic, sample_type), count in sorted(
            counts.items(), key=lambda item: (str(item[0][0]), str(item[0][1]))
        )
    ]
    return {
        "object": "generation.coverage",
        "job_id": None,
        "dataset_id": dataset_id,
        "accepted": sum(counts.values()),
        "cells": cells,
        "diversity": None,
    }


async def add_diversity(
    report: dict[str, Any], database: Database, dataset_id: str
) -> dict[str, Any]:
    """Diversity of the dataset's live samples, when the embeddings extra is installed."""
    texts: list[str] = []
    after: int | None = None
    while True:
        page, more = await sample_repo.list_samples(
            database, dataset_id, SampleFilter(), after_seq=after, limit=1000, order="asc"
        )
        texts += [sample_text(s.content) for s in page]
        if not more or not page:
            break
        after = page[-1].seq
    try:
        from datamill.nlp.diversity import diversity
    except ImportError:
        return report
    if len(texts) < 2:
        return report
    measured = await asyncio.to_thread(diversity, texts, max_embedded=MAX_EMBEDDED)
    report["diversity"] = {
        "texts": measured.texts,
        "embedded": measured.embedded,
        "mean_pairwise_distance": round(measured.mean_pairwise_distance, 4),
        "distinct_1": round(measured.distinct_1, 4),
        "distinct_2": round(measured.distinct_2, 4),
    }
    return report
