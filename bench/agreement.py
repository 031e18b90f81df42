"""Reviewer agreement: the full report (per question and per reviewer) of a large review.

    .venv/bin/python bench/agreement.py [--items 10000] [--reviewers 3] [--pool 20] [--repeats 5]

Every item is answered by ``--reviewers`` reviewers drawn from a pool of ``--pool``, on the
default schema's decision and rating questions and a multiple labels question of three
options (so 3 questions, 5 scales), with gold answers on one item in ten and a final
decision on every item. Reviewers agree with a hidden truth 70% of the time. Prints
``agreement items=N ratings=N best_s=... median_s=... best_cpu_s=...`` (CPU time is
less noisy on a busy machine); the target is well under a second for 10,000 items x 3
reviewers x 3 questions.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from datamill.protocol.task_schema_format import DEFAULT_QUESTIONS, Question, QuestionKind
from datamill.review.agreement import compute_agreement
from datamill.review.ratings import Rating, Value

TAGS = Question(
    name="tags", kind=QuestionKind.labels, options=["a", "b", "c"], multiple=True, required=False
)
QUESTIONS = [DEFAULT_QUESTIONS[0], DEFAULT_QUESTIONS[1], TAGS]


def make_review(
    items: int, reviewers: int, pool: int, seed: int = 0
) -> tuple[list[Rating], dict[str, dict[str, Value]], dict[str, str]]:
    rng = random.Random(seed)
    ratings: list[Rating] = []
    gold: dict[str, dict[str, Value]] = {}
    final: dict[str, str] = {}
    for n in range(items):
        item = f"smp_{n:08d}"
        decision = rng.choice(("approve", "reject"))
        rating = rng.randint(1, 5)
        tags = tuple(sorted(rng.sample("abc", rng.randint(0, 3))))
        if n % 10 == 0:
            gold[item] = {"decision": decision, "rating": rating, "tags": tags}
        final[item] = decision
        for reviewer in rng.sample(range(pool), reviewers):
            who = f"key_{reviewer:03d}"
            honest = rng.random() < 0.7
            ratings.append(
                Rating(
                    item, who, "decision", decision if honest else rng.choice(("approve", "reject"))
                )
            )
            ratings.append(Rating(item, who, "rating", rating if honest else rng.randint(1, 5)))
            ratings.append(Rating(item, who, "tags", tags if honest else ("a",)))
    return ratings, gold, final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--reviewers", type=int, default=3)
    parser.add_argument("--pool", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    ratings, gold, final = make_review(args.items, args.reviewers, args.pool)
    times, cpu = [], []
    for _ in range(args.repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        report = compute_agreement(ratings, questions=QUESTIONS, gold=gold, final_decisions=final)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    decision = report.questions[0]
    print(
        f"agreement items={args.items} ratings={len(ratings)} reviewers={report.reviewer_count} "
        f"best_s={min(times):.3f} median_s={statistics.median(times):.3f} "
        f"best_cpu_s={min(cpu):.3f} "
        f"alpha_decision={decision.krippendorff_alpha.value:.3f}"
    )


if __name__ == "__main__":
    main()
