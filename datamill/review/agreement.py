"""Agreement between reviewers, per question and per reviewer: pure functions over plain
data, so the API, the CLI and tests compute it the same way from whatever the store holds.

`compute_agreement` takes ratings, the schema's questions, gold answers and final
decisions (`datamill.review.ratings` says how they are read) and returns an
`AgreementReport`, a tree of frozen dataclasses with only ints, finite floats, strings and
None in it. A statistic that is undefined for the data (one reviewer, one value only, ...)
is None with a `NullReason`, never NaN; docs/curation.md ("Agreement") defines each one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from datamill.protocol.task_schema_format import Question, QuestionKind
from datamill.review.pairs import Pairs, pairs_of
from datamill.review.ratings import Collected, Rating, ScaleRatings, Value, collect_ratings
from datamill.review.reviewer_report import (
    GoldAgreement,
    ReviewerReport,
    gold_agreement,
    gold_answers,
    reviewer_reports,
)
from datamill.review.statistics import (
    CohenKappas,
    Counts,
    Estimate,
    Level,
    NullReason,
    fleiss_kappa,
    krippendorff_alpha,
    observed_agreement,
    undefined,
)

# The mean of pairwise kappas counts a pair of reviewers once they share this many items.
DEFAULT_MIN_SHARED_ITEMS = 10
# A report lists at most this many pairs per question (those sharing the most items).
MAX_LISTED_PAIRS = 200


@dataclass(frozen=True, slots=True)
class ObservedAgreement:
    value: float | None
    reason: NullReason | None
    pairs: int  # pairs of ratings of the same item compared


@dataclass(frozen=True, slots=True)
class PairKappa:
    """Cohen's kappa of two reviewers over the items both rated."""

    reviewers: tuple[str, str]
    items: int
    value: float | None
    reason: NullReason | None


@dataclass(frozen=True, slots=True)
class CohenKappa:
    """Two reviewers: their kappa. More: the mean of the defined kappas of the pairs that
    share at least ``min_shared_items`` items (``pairs_used`` of them)."""

    value: float | None
    reason: NullReason | None
    pairs_used: int
    pairs_total: int  # pairs of reviewers sharing at least one item
    pairs: tuple[PairKappa, ...]  # the pairs considered, most shared items first


@dataclass(frozen=True, slots=True)
class FleissKappa:
    """Over the items with the most common number of ratings (at least two)."""

    value: float | None
    reason: NullReason | None
    raters_per_item: int | None
    items_used: int


@dataclass(frozen=True, slots=True)
class KrippendorffAlpha:
    value: float | None
    reason: NullReason | None
    values: int  # pairable values: ratings of items with at least two


@dataclass(frozen=True, slots=True)
class QuestionAgreement:
    question: str  # the question's name, or ``name[option]`` for a multiple labels option
    kind: QuestionKind
    option: str | None
    level: Level
    ratings: int
    invalid_ratings: int  # values that did not fit the question, left out
    items: int  # items with at least one rating
    items_compared: int  # items with at least two
    reviewers: int
    observed_agreement: ObservedAgreement
    cohen_kappa: CohenKappa
    fleiss_kappa: FleissKappa
    krippendorff_alpha: KrippendorffAlpha
    gold: GoldAgreement


@dataclass(frozen=True, slots=True)
class AgreementReport:
    item_count: int
    reviewer_count: int
    rating_count: int  # answers counted: one per item, reviewer and question
    ignored_ratings: int  # answers to text or unknown questions
    min_shared_items: int
    questions: tuple[QuestionAgreement, ...]
    reviewers: tuple[ReviewerReport, ...]


def compute_agreement(
    ratings: Iterable[Rating],
    *,
    questions: Sequence[Question],
    gold: Mapping[str, Mapping[str, Value]] | None = None,
    final_decisions: Mapping[str, str] | None = None,
    min_shared_items: int = DEFAULT_MIN_SHARED_ITEMS,
) -> AgreementReport:
    """The agreement report of ``ratings``: per question of ``questions`` (text ones
    excepted) and per reviewer. ``gold`` maps an item to its gold answers by question;
    ``final_decisions`` maps an item to its final "approve" or "reject"."""
    if min_shared_items < 1:
        raise ValueError("min_shared_items must be at least 1")
    collected = collect_ratings(
        ratings, questions=questions, gold=gold or {}, final_decisions=final_decisions or {}
    )
    reviewer_count = len(collected.reviewer_ids)
    pairs = [pairs_of(scale, reviewer_count) for scale in collected.scales]
    return AgreementReport(
        item_count=len(collected.item_ids),
        reviewer_count=reviewer_count,
        rating_count=collected.answers,
        ignored_ratings=collected.ignored,
        min_shared_items=min_shared_items,
        questions=tuple(
            _question(collected, scale, scale_pairs, min_shared_items)
            for scale, scale_pairs in zip(collected.scales, pairs, strict=True)
        ),
        reviewers=tuple(reviewer_reports(collected, pairs)),
    )


def _question(
    collected: Collected, ratings: ScaleRatings, pairs: Pairs, min_shared_items: int
) -> QuestionAgreement:
    counts = ratings.counts(len(collected.item_ids))
    per_item = counts.sum(axis=1)
    compared = counts[per_item >= 2]
    pair_count = int((per_item * (per_item - 1)).sum()) // 2
    observed = observed_agreement(compared)
    alpha = krippendorff_alpha(compared, ratings.scale.level)
    scale = ratings.scale
    return QuestionAgreement(
        question=scale.key,
        kind=scale.question.kind,
        option=scale.option,
        level=scale.level,
        ratings=int(ratings.items.shape[0]),
        invalid_ratings=ratings.invalid,
        items=int((per_item > 0).sum()),
        items_compared=int(compared.shape[0]),
        reviewers=int(np.unique(ratings.reviewers).shape[0]),
        observed_agreement=ObservedAgreement(observed.value, observed.reason, pair_count),
        cohen_kappa=_cohen(collected, ratings, pairs, min_shared_items),
        fleiss_kappa=_fleiss(compared),
        krippendorff_alpha=KrippendorffAlpha(alpha.value, alpha.reason, int(compared.sum())),
        gold=_gold(ratings, len(collected.item_ids)),
    )


def _cohen(
    collected: Collected, ratings: ScaleRatings, pairs: Pairs, min_shared_items: int
) -> CohenKappa:
    kappas = CohenKappas(pairs.items, pairs.agreeing, pairs.first_margins, pairs.second_margins)
    # With exactly two reviewers their one pair is the answer, however few items they share.
    if np.unique(ratings.reviewers).shape[0] == 2:
        considered = np.ones(len(pairs), bool)
    else:
        considered = pairs.items >= min_shared_items
    used = considered & kappas.defined
    estimate: Estimate
    if used.any():
        estimate = Estimate(value=float(kappas.values[used].mean()))
    elif considered.any():
        estimate = undefined(NullReason.no_variation)
    elif len(pairs):
        estimate = undefined(NullReason.no_reviewer_pair)
    else:
        estimate = undefined(NullReason.too_few_ratings)
    # Most shared items first; within a tie, in the order of the reviewers' ids.
    shown = np.flatnonzero(considered)
    shown = shown[np.argsort(-pairs.items[shown], kind="stable")][:MAX_LISTED_PAIRS]
    ids = collected.reviewer_ids
    listed = []
    for n in shown.tolist():
        kappa = kappas.estimate(n)
        listed.append(
            PairKappa(
                reviewers=(ids[int(pairs.first[n])], ids[int(pairs.second[n])]),
                items=int(pairs.items[n]),
                value=kappa.value,
                reason=kappa.reason,
            )
        )
    return CohenKappa(estimate.value, estimate.reason, int(used.sum()), len(pairs), tuple(listed))


def _fleiss(compared: Counts) -> FleissKappa:
    per_item = compared.sum(axis=1)
    if per_item.shape[0] == 0:
        return FleissKappa(None, NullReason.too_few_ratings, None, 0)
    # The most common number of ratings per item; of two as common, the larger.
    sizes, frequency = np.unique(per_item, return_counts=True)
    raters = int(sizes[np.flatnonzero(frequency == frequency.max())[-1]])
    used = compared[per_item == raters]
    kappa = fleiss_kappa(used)
    return FleissKappa(kappa.value, kappa.reason, raters, int(used.shape[0]))


def _gold(ratings: ScaleRatings, item_count: int) -> GoldAgreement:
    gold = gold_answers(ratings, item_count)
    on_gold = gold >= 0
    correct = int((ratings.categories[on_gold] == gold[on_gold]).sum())
    items = int(np.unique(ratings.items[on_gold]).shape[0])
    return gold_agreement(correct, int(on_gold.sum()), items=items)
