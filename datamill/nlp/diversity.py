"""How varied a set of samples is: mean pairwise embedding distance and distinct-n.

- **Mean pairwise distance**: the mean cosine distance (1 - cosine similarity) over all
  pairs of different samples, from all-MiniLM-L6-v2 embeddings. 0 when every sample says the
  same thing; unrelated English sentences sit around 0.9. For unit vectors the mean over
  pairs follows from two sums, ``(|sum v|^2 - n) / (n (n - 1))``, so it is exact and O(n):
  what costs is embedding the texts, so above ``max_embedded`` texts a seeded random sample
  of that many is embedded.
- **distinct-n** (Li et al., 2016): distinct word n-grams over all word n-grams, for n = 1
  and 2, on the normalised texts (`fold_string`, words are ``\\w+`` runs). 1.0 when no
  n-gram repeats. It falls as a set grows, so compare sets of similar sizes.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from datamill.nlp.canonical import fold_string
from datamill.nlp.embeddings import Embedder, Vectors, shared_embedder

DEFAULT_MAX_EMBEDDED = 2000
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Diversity:
    """The diversity measures of a set of texts."""

    texts: int
    embedded: int  # texts embedded for the pairwise distance (all, or a random sample)
    mean_pairwise_distance: float
    distinct_1: float
    distinct_2: float


def diversity(
    texts: Sequence[str],
    *,
    embedder: Embedder | None = None,
    max_embedded: int = DEFAULT_MAX_EMBEDDED,
    seed: int = 0,
) -> Diversity:
    """Both measures for ``texts``; ``embedder`` defaults to the shared one."""
    chosen: Sequence[str] = texts
    if len(texts) > max_embedded:
        chosen = random.Random(seed).sample(list(texts), max_embedded)
    vectors = (embedder or shared_embedder()).embed(chosen)
    return Diversity(
        texts=len(texts),
        embedded=len(chosen),
        mean_pairwise_distance=mean_pairwise_distance(vectors),
        distinct_1=distinct_n(texts, 1),
        distinct_2=distinct_n(texts, 2),
    )


def mean_pairwise_distance(vectors: Vectors) -> float:
    """Mean cosine distance over all pairs of different rows of unit ``vectors``."""
    rows = np.asarray(vectors, dtype=np.float64)
    return mean_pairwise_distance_from_sums(
        rows.sum(axis=0), float(np.einsum("ij,ij->", rows, rows)), len(rows)
    )


def mean_pairwise_distance_from_sums(
    total: npt.NDArray[np.float64], squares: float, count: int
) -> float:
    """The same from the vectors' sum and their summed squared norms (0.0 under two)."""
    if count < 2:
        return 0.0
    # sum over i != j of v_i . v_j is |sum v|^2 minus the diagonal, sum |v_i|^2.
    pair_similarity = (float(total @ total) - squares) / (count * (count - 1))
    return 1.0 - pair_similarity


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct word n-grams over all word n-grams in ``texts`` (0.0 when there are none)."""
    vocabulary: dict[str, int] = {}
    grams: list[npt.NDArray[np.int64]] = []
    for text in texts:
        words = _WORD.findall(fold_string(text))
        if len(words) < n:
            continue
        ids = np.array([vocabulary.setdefault(w, len(vocabulary)) for w in words], np.int64)
        grams.append(np.lib.stride_tricks.sliding_window_view(ids, n))
    if not grams:
        return 0.0
    every = np.concatenate(grams)
    return len(np.unique(every, axis=0)) / len(every)
