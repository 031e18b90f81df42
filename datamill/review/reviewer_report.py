"""The per-reviewer report: how much each reviewer did, and how their answers compare with
the other reviewers of the same items, with gold answers and with final decisions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from datamill.review.pairs import Pairs, against_the_rest
from datamill.review.ratings import Collected, ScaleRatings
from datamill.review.statistics import CohenKappas, Estimate, NullReason, share, undefined


@dataclass(frozen=True, slots=True)
class GoldAgreement:
    """Ratings of items with a gold answer, and the share that match it."""

    value: float | None
    reason: NullReason | None
    items: int  # gold items rated
    reviews: int  # ratings of them (one item may have several)
    correct: int


@dataclass(frozen=True, slots=True)
class ReviewerQuestion:
    """One reviewer on one question: their ratings against everyone else's on the same
    items (every pair of their rating and another's, pooled)."""

    question: str
    ratings: int
    compared: int  # pairs of their rating and another reviewer's on the same item
    observed_agreement: Estimate
    cohen_kappa: Estimate  # of the pooled table (their value, the other's value)
    gold: GoldAgreement


@dataclass(frozen=True, slots=True)
class FinalDecisionAgreement:
    """A reviewer's decisions on items that have a final decision, and how many match."""

    value: float | None
    reason: NullReason | None
    items: int
    matching: int


@dataclass(frozen=True, slots=True)
class ReviewerReport:
    reviewer_id: str
    reviews: int  # items answered (any question)
    approved: int
    rejected: int
    questions: tuple[ReviewerQuestion, ...]
    final_decision: FinalDecisionAgreement


def reviewer_reports(collected: Collected, pairs: list[Pairs]) -> list[ReviewerReport]:
    """One report per reviewer, in the order of their ids; ``pairs`` is each scale's."""
    count = len(collected.reviewer_ids)
    item_count = len(collected.item_ids)
    per_scale = [
        _reviewer_questions(ratings, scale_pairs, count, item_count)
        for ratings, scale_pairs in zip(collected.scales, pairs, strict=True)
    ]
    reviewed = _items_reviewed(collected, count)
    decisions = collected.decision
    approved = rejected = np.zeros(count, np.int64)
    if decisions is not None:
        approved = _count(decisions.reviewers[decisions.categories == 0], count)
        rejected = _count(decisions.reviewers[decisions.categories == 1], count)
    finals = _final_decisions(collected, count)
    return [
        ReviewerReport(
            reviewer_id=reviewer_id,
            reviews=int(reviewed[n]),
            approved=int(approved[n]),
            rejected=int(rejected[n]),
            questions=tuple(questions[n] for questions in per_scale),
            final_decision=finals[n],
        )
        for n, reviewer_id in enumerate(collected.reviewer_ids)
    ]


def _reviewer_questions(
    ratings: ScaleRatings, pairs: Pairs, count: int, item_count: int
) -> list[ReviewerQuestion]:
    rest = against_the_rest(pairs, count)
    kappas = CohenKappas(rest.items, rest.agreeing, rest.own_margins, rest.other_margins)
    rated = _count(ratings.reviewers, count)
    gold = gold_answers(ratings, item_count)
    on_gold = gold >= 0
    gold_rated = _count(ratings.reviewers[on_gold], count)
    gold_correct = _count(ratings.reviewers[on_gold & (ratings.categories == gold)], count)
    result = []
    for n in range(count):
        compared = int(rest.items[n])
        if compared:
            observed = share(int(rest.agreeing[n]), compared, NullReason.no_other_reviewers)
            kappa = kappas.estimate(n)
        else:
            observed = kappa = undefined(NullReason.no_other_reviewers)
        correct, total = int(gold_correct[n]), int(gold_rated[n])
        result.append(
            ReviewerQuestion(
                question=ratings.scale.key,
                ratings=int(rated[n]),
                compared=compared,
                observed_agreement=observed,
                cohen_kappa=kappa,
                gold=gold_agreement(correct, total, items=total),
            )
        )
    return result


def gold_agreement(correct: int, reviews: int, *, items: int) -> GoldAgreement:
    estimate = share(correct, reviews, NullReason.no_gold)
    return GoldAgreement(estimate.value, estimate.reason, items, reviews, correct)


def gold_answers(ratings: ScaleRatings, item_count: int) -> npt.NDArray[np.int64]:
    """The gold category of each rating's item, -1 where it has none."""
    by_item = np.full(item_count, -1, np.int64)
    if ratings.gold:
        by_item[np.fromiter(ratings.gold.keys(), np.int64)] = np.fromiter(
            ratings.gold.values(), np.int64
        )
    result: npt.NDArray[np.int64] = by_item[ratings.items]
    return result


def _items_reviewed(collected: Collected, count: int) -> npt.NDArray[np.int64]:
    item_count = max(len(collected.item_ids), 1)
    keys = [s.reviewers * item_count + s.items for s in collected.scales]
    unique = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
    return _count(unique // item_count, count)


def _final_decisions(collected: Collected, count: int) -> list[FinalDecisionAgreement]:
    decisions = collected.decision
    if decisions is None or not collected.final:
        nothing = FinalDecisionAgreement(None, NullReason.no_final_decision, 0, 0)
        return [nothing] * count
    final = np.full(len(collected.item_ids), -1, np.int64)
    final[np.fromiter(collected.final.keys(), np.int64)] = np.fromiter(
        collected.final.values(), np.int64
    )
    wanted = final[decisions.items]
    has = wanted >= 0
    items = _count(decisions.reviewers[has], count)
    matching = _count(decisions.reviewers[has & (decisions.categories == wanted)], count)
    result = []
    for n in range(count):
        estimate = share(int(matching[n]), int(items[n]), NullReason.no_final_decision)
        result.append(
            FinalDecisionAgreement(estimate.value, estimate.reason, int(items[n]), int(matching[n]))
        )
    return result


def _count(indexes: npt.NDArray[np.int64], count: int) -> npt.NDArray[np.int64]:
    return np.bincount(indexes, minlength=count).astype(np.int64)
