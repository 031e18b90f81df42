"""Diversity measures on sets whose answers are known."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from datamill.nlp.diversity import distinct_n, diversity, mean_pairwise_distance
from datamill.nlp.embeddings import Embedder
from tests.nlp.conftest import planted_pairs


def test_distinct_n_counts_by_hand():
    texts = ["A b c.", "a B d"]  # unigrams a b c a b d; bigrams ab bc ab bd

    assert distinct_n(texts, 1) == pytest.approx(4 / 6)
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)
    assert distinct_n(["one two", "three"], 2) == 1.0  # a text too short has no bigram
    assert distinct_n([], 1) == 0.0


def test_mean_pairwise_distance_is_the_mean_over_all_pairs():
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((40, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    brute = np.mean([1 - a @ b for a, b in itertools.combinations(vectors, 2)])

    assert mean_pairwise_distance(vectors) == pytest.approx(brute, abs=1e-5)
    assert mean_pairwise_distance(vectors[:1]) == 0.0


def test_copies_of_one_text_have_no_diversity(embedder: Embedder):
    measured = diversity(["The court dismissed the appeal."] * 6, embedder=embedder)

    assert measured.mean_pairwise_distance == pytest.approx(0.0, abs=1e-5)
    assert measured.distinct_1 == pytest.approx(4 / 30)  # "the" twice in each copy
    assert measured.texts == measured.embedded == 6


def test_varied_texts_score_higher_than_variations_on_one_theme(embedder: Embedder):
    varied = sorted({p.a for p in planted_pairs()})[:24]
    theme = [
        f"The tenant must pay the {what} on the {day} of each month."
        for what in ("rent", "service charge", "parking fee", "utility bill")
        for day in ("first", "second", "third", "fifth", "tenth", "last day")
    ]

    spread, narrow = diversity(varied, embedder=embedder), diversity(theme, embedder=embedder)

    print(f"\nvaried {spread}\ntheme {narrow}")
    assert spread.mean_pairwise_distance > 0.8
    assert narrow.mean_pairwise_distance < 0.3
    assert spread.distinct_1 > narrow.distinct_1
    assert spread.distinct_2 > narrow.distinct_2


def test_large_sets_embed_a_seeded_sample(embedder: Embedder):
    texts = sorted({p.b for p in planted_pairs()})

    first = diversity(texts, embedder=embedder, max_embedded=50, seed=3)
    again = diversity(texts, embedder=embedder, max_embedded=50, seed=3)
    full = diversity(texts, embedder=embedder)

    assert first.embedded == 50
    assert first.texts == len(texts) > 200
    assert first == again
    assert first.mean_pairwise_distance == pytest.approx(full.mean_pairwise_distance, abs=0.05)
    assert first.distinct_2 == full.distinct_2  # n-grams are always counted on every text
