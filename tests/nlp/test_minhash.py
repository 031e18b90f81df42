"""MinHash estimates against exact Jaccard similarity, and the LSH index against brute force."""

from __future__ import annotations

import random

import numpy as np
import pytest

from datamill.nlp.minhash import LshIndex, MinHasher, estimated_jaccard


def _jaccard(hasher: MinHasher, a: str, b: str) -> float:
    first, second = set(hasher.shingles(a).tolist()), set(hasher.shingles(b).tolist())
    return len(first & second) / len(first | second)


def _sentence(rng: random.Random, vocabulary: list[str], words: int) -> list[str]:
    return [rng.choice(vocabulary) for _ in range(words)]


def test_signatures_estimate_jaccard_without_bias():
    rng = random.Random(3)
    vocabulary = [f"word{n}" for n in range(400)]
    hasher = MinHasher()
    errors = []
    for _ in range(300):
        base = _sentence(rng, vocabulary, 30)
        other = list(base)
        for _ in range(rng.randint(0, 15)):
            other[rng.randrange(30)] = rng.choice(vocabulary)
        a, b = " ".join(base), " ".join(other)
        estimate = float(estimated_jaccard(hasher.signature(a), hasher.signature(b)))
        errors.append(estimate - _jaccard(hasher, a, b))

    # 64 values: standard error sqrt(J(1-J)/64) <= 0.0625.
    assert abs(np.mean(errors)) < 0.015
    assert np.std(errors) < 0.07


def test_signatures_are_deterministic_and_normalised():
    hasher = MinHasher()
    text = "The Court  dismissed the appeal."

    assert np.array_equal(hasher.signature(text), MinHasher().signature(text))
    assert np.array_equal(
        hasher.signature(text), hasher.signature("the court dismissed the appeal.")
    )
    assert not np.array_equal(hasher.signature(text), MinHasher(seed=2).signature(text))
    assert hasher.signatures([text, "x"]).shape == (2, 64)
    assert hasher.signature("").shape == hasher.signature("abc").shape == (64,)


def test_char_shingles_keep_near_verbatim_copies_above_threshold():
    hasher = MinHasher()
    text = (
        "The landlord must return the security deposit within fourteen days after the lease ends."
    )
    typo = text.replace("security", "secuirty")
    reworded = "Within fourteen days of the lease ending, the deposit goes back to the tenant."

    assert _jaccard(hasher, text, typo) > 0.8
    assert _jaccard(hasher, text, reworded) < 0.3


@pytest.mark.parametrize("stored", [300, 6000])  # a tail only; 4,500 sorted + a tail
def test_lsh_finds_what_brute_force_finds_above_the_threshold(stored: int):
    rng = random.Random(stored)
    vocabulary = [f"w{n}" for n in range(3000)]
    hasher = MinHasher()
    texts = [" ".join(_sentence(rng, vocabulary, rng.randint(8, 30))) for _ in range(stored)]
    index = LshIndex()
    signatures = hasher.signatures(texts)
    for start in range(0, stored, 500):  # several adds: the sort happens between them
        index.add(signatures[start : start + 500])
    # Queries: light edits of stored texts (one word changed), and fresh texts.
    queries, sources = [], []
    for _ in range(60):
        source = rng.randrange(stored)
        words = texts[source].split()
        words[rng.randrange(len(words))] = rng.choice(vocabulary)
        queries.append(" ".join(words))
        sources.append(source)
    queries += [" ".join(_sentence(rng, vocabulary, 20)) for _ in range(40)]
    query_signatures = hasher.signatures(queries)

    rows, scores = index.best(query_signatures)

    brute = estimated_jaccard(signatures[None, :, :], query_signatures[:, None, :])
    for q in range(len(queries)):
        if brute[q].max() >= 0.8:  # above the lexical threshold, LSH must not miss it
            assert scores[q] == pytest.approx(brute[q].max())
            assert brute[q, rows[q]] == scores[q]
        if rows[q] >= 0:
            assert scores[q] == brute[q, rows[q]]  # a reported score is the true estimate
    found = [rows[q] == sources[q] for q in range(60) if brute[q, sources[q]] >= 0.7]
    assert len(found) >= 40
    assert all(found)
    assert all(scores[60:] < 0.5)  # fresh random texts match nothing closely


def test_an_empty_index_reports_no_match():
    rows, scores = LshIndex().best(MinHasher().signatures(["anything"]))

    assert rows.tolist() == [-1]
    assert scores.tolist() == [0.0]


def test_bands_must_divide_the_signature():
    with pytest.raises(ValueError, match="multiple"):
        LshIndex(num_perm=64, bands=10)
