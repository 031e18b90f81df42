"""Every pair of reviewers who rated the same items of one scale, and what they answered:
the raw material of Cohen's kappa, per pair and per reviewer against the rest.

Pairs are found without a loop over items: the ratings are sorted by item, then reviewer,
so the ratings ``d`` places apart within one item are pairs, for d = 1, 2, ... until no
item has d + 1 ratings. A pair is (a, b) with a's index below b's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from datamill.review.ratings import ScaleRatings

Array = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Pairs:
    """Pairs of reviewers (parallel arrays, one entry per pair that shares an item)."""

    first: Array  # reviewer index of a
    second: Array  # reviewer index of b (> a)
    items: Array  # items both rated
    agreeing: Array  # of which they gave the same value
    first_margins: Array  # pairs x categories: a's values on those items
    second_margins: Array  # pairs x categories: b's values on those items

    def __len__(self) -> int:
        return int(self.first.shape[0])


def pairs_of(ratings: ScaleRatings, reviewer_count: int) -> Pairs:
    """The pairs of reviewers of ``ratings`` and their tables' margins."""
    width = len(ratings.scale.categories)
    items, reviewers, categories = ratings.items, ratings.reviewers, ratings.categories
    pair_parts: list[Array] = []
    first_parts: list[Array] = []
    second_parts: list[Array] = []
    for distance in range(1, max(int(items.shape[0]), 1)):
        same = items[:-distance] == items[distance:]
        if not same.any():
            break  # no item has distance + 1 ratings, so none has more
        first = reviewers[:-distance][same]
        pair_parts.append(first * reviewer_count + reviewers[distance:][same])
        first_parts.append(categories[:-distance][same])
        second_parts.append(categories[distance:][same])
    if not pair_parts:
        empty = np.zeros(0, np.int64)
        margins = np.zeros((0, width), np.int64)
        return Pairs(empty, empty, empty, empty, margins, margins)
    pair = np.concatenate(pair_parts)
    first_value = np.concatenate(first_parts)
    second_value = np.concatenate(second_parts)
    ids, slot = np.unique(pair, return_inverse=True)
    count = ids.shape[0]
    return Pairs(
        first=ids // reviewer_count,
        second=ids % reviewer_count,
        items=np.bincount(slot, minlength=count).astype(np.int64),
        agreeing=np.bincount(slot[first_value == second_value], minlength=count).astype(np.int64),
        first_margins=_margins(slot, first_value, count, width),
        second_margins=_margins(slot, second_value, count, width),
    )


def _margins(slot: Array, values: Array, count: int, width: int) -> Array:
    flat = np.bincount(slot * width + values, minlength=count * width)
    return flat.reshape(count, width).astype(np.int64)


@dataclass(frozen=True, slots=True)
class AgainstTheRest:
    """Each reviewer's pairs with every other reviewer of the same items, pooled: one
    table of (this reviewer's value, the other's value) per reviewer."""

    items: Array  # pairs of ratings compared (an item with two others counts twice)
    agreeing: Array
    own_margins: Array  # reviewers x categories
    other_margins: Array


def against_the_rest(pairs: Pairs, reviewer_count: int) -> AgainstTheRest:
    width = pairs.first_margins.shape[1]
    items = np.zeros(reviewer_count, np.int64)
    agreeing = np.zeros(reviewer_count, np.int64)
    own = np.zeros((reviewer_count, width), np.int64)
    other = np.zeros((reviewer_count, width), np.int64)
    # Each pair counts for both of its reviewers, seen from each side.
    for me, own_side, other_side in (
        (pairs.first, pairs.first_margins, pairs.second_margins),
        (pairs.second, pairs.second_margins, pairs.first_margins),
    ):
        np.add.at(items, me, pairs.items)
        np.add.at(agreeing, me, pairs.agreeing)
        np.add.at(own, me, own_side)
        np.add.at(other, me, other_side)
    return AgainstTheRest(items, agreeing, own, other)
