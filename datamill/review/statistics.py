"""The agreement statistics themselves, over count tables: no reviewers, no questions.

Each statistic is an `Estimate`: a finite float, or ``None`` with the reason the statistic
is undefined (never NaN). The formulas are the textbook ones:

- observed agreement: the share of agreeing pairs of ratings within items,
  ``sum_u sum_c n_uc (n_uc - 1) / sum_u n_u (n_u - 1)``;
- Cohen's kappa of two raters' K x K table: ``(p_o - p_e) / (1 - p_e)``, ``p_e`` from the
  table's two margins (Cohen 1960), for many pairs at once;
- Fleiss' kappa of items rated by the same number of raters (Fleiss 1971);
- Krippendorff's alpha from the coincidence matrix, nominal or ordinal, any number of
  ratings per item (Krippendorff, "Computing Krippendorff's Alpha-Reliability", 2011).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

# Counts are int64: a table of 10^9 ratings still sums exactly.
Counts = npt.NDArray[np.int64]


class NullReason(StrEnum):
    """Why a statistic is null rather than a number."""

    too_few_ratings = "too_few_ratings"  # no item has two ratings: nothing to compare
    no_variation = "no_variation"  # one value only: chance agreement is 1, the statistic 0/0
    no_reviewer_pair = "no_reviewer_pair"  # no two reviewers share enough items
    no_other_reviewers = "no_other_reviewers"  # none of the reviewer's items has another rating
    no_gold = "no_gold"  # no rating of an item with a gold answer
    no_final_decision = "no_final_decision"  # no decision on an item with a final decision


class Level(StrEnum):
    """How the distance between two values is measured (Krippendorff's alpha)."""

    nominal = "nominal"  # equal or not: decisions, labels
    ordinal = "ordinal"  # ranks: ratings 1-5


@dataclass(frozen=True, slots=True)
class Estimate:
    """A statistic's value, or why it has none (exactly one of the two is set)."""

    value: float | None
    reason: NullReason | None = None


def undefined(reason: NullReason) -> Estimate:
    return Estimate(value=None, reason=reason)


def share(part: int, whole: int, reason: NullReason) -> Estimate:
    """``part / whole``, or null for ``reason`` when ``whole`` is 0."""
    return Estimate(value=part / whole) if whole else undefined(reason)


def observed_agreement(counts: Counts) -> Estimate:
    """The share of agreeing pairs of ratings among all pairs within items.

    ``counts`` is items x categories (how many ratings of each value an item has)."""
    per_item = counts.sum(axis=1)
    pairs = int((per_item * (per_item - 1)).sum())
    agreeing = int((counts * (counts - 1)).sum())
    return share(agreeing, pairs, NullReason.too_few_ratings)


class CohenKappas:
    """Cohen's kappa of many pairs of raters at once, from each pair's number of items
    rated by both, how many of them they agree on, and the margins of their table (pairs x
    categories: how often the first rater, and the second, gave each value).

    Array work, as a thousand reviewers make half a million pairs; `estimate` gives one
    pair's kappa, and `defined` says which pairs have one."""

    def __init__(self, totals: Counts, agreeing: Counts, rows: Counts, columns: Counts) -> None:
        safe = np.maximum(totals, 1).astype(np.float64)
        observed = agreeing / safe
        expected = (rows * columns).sum(axis=1) / (safe * safe)
        # See _chance_corrected: expected == 1 is 0/0.
        self._no_variation = expected >= 1.0 - 1e-12
        self._empty = totals == 0
        self.defined = ~(self._no_variation | self._empty)
        denominator = np.where(self.defined, 1.0 - expected, 1.0)
        self.values = np.where(self.defined, (observed - expected) / denominator, 0.0)

    def estimate(self, n: int) -> Estimate:
        if self._empty[n]:
            return undefined(NullReason.too_few_ratings)
        if self._no_variation[n]:
            return undefined(NullReason.no_variation)
        return Estimate(value=_finite(float(self.values[n])))


def fleiss_kappa(counts: Counts) -> Estimate:
    """Fleiss' kappa of items x categories counts where every item has the same number
    (at least two) of ratings."""
    if counts.shape[0] == 0:
        return undefined(NullReason.too_few_ratings)
    raters = int(counts[0].sum())
    if raters < 2 or bool((counts.sum(axis=1) != raters).any()):
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings per item")
    items = counts.shape[0]
    per_item = ((counts * (counts - 1)).sum(axis=1)) / (raters * (raters - 1))
    observed = float(per_item.mean())
    shares = counts.sum(axis=0) / (items * raters)
    expected = float((shares * shares).sum())
    return _chance_corrected(observed, expected)


def krippendorff_alpha(counts: Counts, level: Level) -> Estimate:
    """Krippendorff's alpha of items x categories counts (categories in their order, for
    ordinal). Items with fewer than two ratings carry no pairable value and are left out,
    as the coefficient defines."""
    per_item = counts.sum(axis=1)
    pairable = counts[per_item >= 2].astype(np.float64)
    if pairable.shape[0] == 0:
        return undefined(NullReason.too_few_ratings)
    weights = pairable / (pairable.sum(axis=1) - 1)[:, None]
    # The coincidence matrix: o_ck = sum_u n_uc (n_uk - [c = k]) / (m_u - 1).
    coincidences = pairable.T @ weights - np.diag(weights.sum(axis=0))
    marginals = coincidences.sum(axis=0)
    total = float(marginals.sum())
    distances = _distances(marginals, level)
    disagreement = float((coincidences * distances).sum())
    expected = float((np.outer(marginals, marginals) * distances).sum()) / (total - 1)
    if expected <= 0.0:
        return undefined(NullReason.no_variation)
    return Estimate(value=_finite(1.0 - disagreement / expected))


def _distances(marginals: npt.NDArray[np.float64], level: Level) -> npt.NDArray[np.float64]:
    """The squared distance between every two categories (Krippendorff's delta^2)."""
    size = marginals.shape[0]
    if level is Level.nominal:
        return 1.0 - np.eye(size)
    # Ordinal: the values between c and k (both ends halved), counted in the data, squared.
    cumulative = np.concatenate(([0.0], np.cumsum(marginals)))
    low = np.minimum.outer(np.arange(size), np.arange(size))
    high = np.maximum.outer(np.arange(size), np.arange(size))
    between = cumulative[high + 1] - cumulative[low]
    halves = (marginals[low] + marginals[high]) / 2
    result: npt.NDArray[np.float64] = (between - halves) ** 2
    return result


def _chance_corrected(observed: float, expected: float) -> Estimate:
    # expected == 1 only when both margins put everything on one value (then observed == 1
    # too): 0/0, not a kappa. Rounding may leave it a hair below 1.
    if expected >= 1.0 - 1e-12:
        return undefined(NullReason.no_variation)
    return Estimate(value=_finite((observed - expected) / (1.0 - expected)))


def _finite(value: float) -> float:
    if not np.isfinite(value):  # a guard: the callers above never divide by zero
        raise ArithmeticError(f"an agreement statistic came out {value}")
    return float(value)
