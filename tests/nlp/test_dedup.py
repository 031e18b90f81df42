"""Near-duplicate removal: planted paraphrases against planted distinct pairs (precision and
recall at the default thresholds), exact and lexical matches, batches, rebuilding."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import pytest

from datamill.nlp.dedup import (
    DEFAULT_LEXICAL_THRESHOLD,
    DEFAULT_THRESHOLD,
    DuplicateKind,
    DuplicateMatch,
    NearDuplicateIndex,
)
from datamill.nlp.embeddings import Embedder, Vectors
from datamill.nlp.static_embeddings import shared_static_embedder
from tests.nlp.conftest import Pair, planted_pairs

# Floors a little under what the default thresholds measure on paraphrases.jsonl
# (docs/dedup.md): a regression in the model, the pooling or the index shows here.
RECALL_FLOOR = 0.78
PRECISION_FLOOR = 0.88  # every planted distinct pair, the 8 hard ones included
SAME_TOPIC_PRECISION_FLOOR = 0.96  # the distinct pairs on the same topic only


class CountingEmbedder(Embedder):
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, shared: Embedder) -> None:
        super().__init__(threads=shared.threads)
        self._loaded = shared._loaded  # share the loaded session: no second load
        self.embedded: list[str] = []

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.embedded.extend(texts)
        return super().embed(texts)


@pytest.fixture
def counting(embedder: Embedder) -> CountingEmbedder:
    return CountingEmbedder(embedder)


def _scores(flagged: list[bool], pairs: list[Pair]) -> tuple[float, float]:
    paraphrase = [p.label == "paraphrase" for p in pairs]
    true_positives = sum(f and p for f, p in zip(flagged, paraphrase, strict=True))
    precision = true_positives / max(1, sum(flagged))
    return precision, true_positives / sum(paraphrase)


def test_planted_paraphrases_are_caught_and_distinct_samples_kept(embedder: Embedder):
    """The first sentence of every pair is kept; each second sentence is then checked
    against all of them (as a generation job checks a new answer against its dataset)."""
    pairs = planted_pairs()
    assert sum(p.label == "paraphrase" for p in pairs) >= 100
    assert sum(p.label == "distinct" for p in pairs) >= 100
    index = NearDuplicateIndex(embedder)
    kept = sorted({p.a for p in pairs})
    index.add_many(kept, kept)

    matches = index.check_many([p.b for p in pairs])

    flagged = [m is not None for m in matches]
    precision, recall = _scores(flagged, pairs)
    same_topic = [(f, p) for f, p in zip(flagged, pairs, strict=True) if p.how in _SOFT]
    topic_precision, _ = _scores([f for f, _ in same_topic], [p for _, p in same_topic])
    partner = sum(
        m is not None and m.key == p.a and p.label == "paraphrase"
        for m, p in zip(matches, pairs, strict=True)
    ) / sum(p.label == "paraphrase" for p in pairs)
    hard = [f for f, p in zip(flagged, pairs, strict=True) if p.how not in _SOFT]
    print(
        f"\nplanted pairs at threshold {DEFAULT_THRESHOLD} (lexical {DEFAULT_LEXICAL_THRESHOLD}):"
        f" precision {precision:.3f}, recall {recall:.3f} (its own partner {partner:.3f});"
        f" precision without the hard negatives {topic_precision:.3f};"
        f" hard negatives flagged {sum(hard)}/{len(hard)}"
    )
    assert recall >= RECALL_FLOOR
    assert precision >= PRECISION_FLOOR
    assert topic_precision >= SAME_TOPIC_PRECISION_FLOOR


_SOFT = {"reword", "reorder", "synonyms", "same-topic"}


def test_exact_duplicates_match_without_the_model(counting: CountingEmbedder):
    index = NearDuplicateIndex(counting)
    index.add("The court dismissed the appeal.", "s1")
    counting.embedded.clear()

    match = index.check_and_add("  the COURT dismissed  the appeal. ", "s2")

    assert match == DuplicateMatch("s1", DuplicateKind.exact, 1.0)
    assert counting.embedded == []
    assert len(index) == 1


def test_near_verbatim_copies_match_lexically_without_the_model(counting: CountingEmbedder):
    text = (
        "The landlord must return the security deposit within fourteen days after the lease "
        "ends, less any amount needed to repair damage beyond normal wear and tear."
    )
    index = NearDuplicateIndex(counting)
    index.add(text, "s1")
    counting.embedded.clear()
    copies = [
        text.replace("security", "secuirty"),  # a typo the model reads badly
        text.replace(", less", " less").replace("tear.", "tear"),
        text.replace("within fourteen days", "within 14 days"),
    ]

    matches = index.check_many(copies)

    assert [m.kind if m else None for m in matches] == [DuplicateKind.lexical] * 3
    assert all(m and m.key == "s1" and m.score >= DEFAULT_LEXICAL_THRESHOLD for m in matches)
    assert counting.embedded == []


def test_the_lexical_pass_can_be_turned_off(counting: CountingEmbedder):
    text = "The landlord must return the security deposit within fourteen days."
    index = NearDuplicateIndex(counting, lexical_threshold=1.1)
    index.add(text, "s1")

    match = index.check(text.replace("within", "inside"))

    assert match is not None
    assert match.kind == DuplicateKind.semantic


def test_a_paraphrase_matches_semantically(embedder: Embedder):
    index = NearDuplicateIndex(embedder)
    index.add("If the buyer fails to pay within thirty days, the seller may cancel.", "s1")

    match = index.check("The seller may cancel if the buyer does not pay within thirty days.")
    unrelated = index.check("Copyright protects the expression of an idea, not the idea itself.")

    assert match is not None
    assert match.kind == DuplicateKind.semantic
    assert match.key == "s1"
    assert DEFAULT_THRESHOLD <= match.score <= 1.0
    assert unrelated is None


def test_check_adds_nothing_and_check_and_add_keeps_what_is_new(embedder: Embedder):
    index = NearDuplicateIndex(embedder)

    assert index.check("The museum opens at nine on weekdays.") is None
    assert len(index) == 0
    assert index.check_and_add("The museum opens at nine on weekdays.", "s1") is None
    assert index.check_and_add("On weekdays the museum opens at nine.", "s2") is not None
    assert len(index) == 1


def test_a_batch_catches_duplicates_among_its_own_candidates(embedder: Embedder):
    index = NearDuplicateIndex(embedder)
    index.add("Honey never spoils if it is stored properly.", "old")
    batch = [
        "Because he missed the bus, he was late for work.",  # new
        "He was late for work since he had missed the bus.",  # paraphrase of the one above
        "Properly stored honey does not go bad.",  # paraphrase of the kept sample
        "because he missed the bus,  he was late for work.",  # exact copy of the first
        "Regular exercise lowers the risk of heart disease.",  # new
    ]

    matches = index.check_and_add_many(batch, ["b0", "b1", "b2", "b3", "b4"])

    assert [m.key if m else None for m in matches] == [None, "b0", "old", "b0", None]
    assert [m.kind if m else None for m in matches] == [
        None,
        DuplicateKind.semantic,
        DuplicateKind.semantic,
        DuplicateKind.exact,
        None,
    ]
    assert len(index) == 3


@pytest.mark.parametrize("search", ["transformer", "cascade"])
def test_a_batch_decides_as_the_same_calls_one_by_one(embedder: Embedder, search: str):
    """Also with the static table searching and the transformer confirming (cascade)."""

    def made() -> NearDuplicateIndex:
        if search == "cascade":
            return NearDuplicateIndex(shared_static_embedder(), confirm=embedder)
        return NearDuplicateIndex(embedder)

    pairs = planted_pairs()
    rng = random.Random(5)
    texts = [t for p in pairs[:80] for t in (p.a, p.b)]
    texts += [t.upper() for t in rng.sample(texts, 10)]  # exact copies
    texts += [t.replace("e", "é", 1) + "!" for t in rng.sample(texts, 10)]  # near-verbatim
    rng.shuffle(texts)
    keys = [f"k{n}" for n in range(len(texts))]
    one_by_one = made()
    batched = made()

    single = [one_by_one.check_and_add(text, key) for text, key in zip(texts, keys, strict=True)]
    many = []
    for start in range(0, len(texts), 37):
        many += batched.check_and_add_many(texts[start : start + 37], keys[start : start + 37])

    assert [(m.key, m.kind) if m else None for m in many] == [
        (m.key, m.kind) if m else None for m in single
    ]
    for a, b in zip(many, single, strict=True):
        assert (a is None) or a.score == pytest.approx(b.score if b else 0, abs=2e-3)
    kinds = {m.kind for m in single if m}
    assert kinds == set(DuplicateKind)  # the corpus exercised every test
    assert len(one_by_one) == len(batched)


def test_rebuild_refills_from_stored_texts(embedder: Embedder):
    samples = [(f"s{n}", p.a) for n, p in enumerate(planted_pairs()[:40])]
    first = NearDuplicateIndex(embedder)
    first.add_many([t for _, t in samples], [k for k, _ in samples])
    resumed = NearDuplicateIndex(embedder)
    resumed.add("something stale", "gone")

    resumed.rebuild(iter(samples), batch_size=16)

    assert len(resumed) == 40
    probes = [p.b for p in planted_pairs()[:40]] + ["something stale"]
    assert [m and (m.key, m.kind) for m in resumed.check_many(probes)] == [
        m and (m.key, m.kind) for m in first.check_many(probes)
    ]
    assert resumed.check("something stale") is None


def test_stored_vectors_refill_without_the_model(embedder: Embedder, counting: CountingEmbedder):
    texts = [p.a for p in planted_pairs()[:20]]
    vectors = embedder.embed(texts)
    index = NearDuplicateIndex(counting)

    index.add_many(texts, [f"s{n}" for n in range(20)], vectors=vectors)

    assert counting.embedded == []
    match = index.check(planted_pairs()[0].b)
    assert match is not None
    assert match.key == "s0"


def test_float32_and_float16_vectors_decide_alike(embedder: Embedder):
    pairs = planted_pairs()
    kept = sorted({p.a for p in pairs})
    small = NearDuplicateIndex(embedder, vector_dtype="float16")
    exact = NearDuplicateIndex(embedder, vector_dtype="float32")
    vectors = embedder.embed(kept)
    small.add_many(kept, kept, vectors=vectors)
    exact.add_many(kept, kept, vectors=vectors)

    probes = [p.b for p in pairs]
    halves, fulls = small.check_many(probes), exact.check_many(probes)

    for half, full in zip(halves, fulls, strict=True):
        if full is not None and abs(full.score - DEFAULT_THRESHOLD) > 0.002:
            assert half is not None
            assert half.key == full.key
            assert half.score == pytest.approx(full.score, abs=2e-3)
    assert exact.nbytes - small.nbytes == 8192 * 384 * 2  # one block, 2 bytes less per value


def test_vectors_span_several_blocks(embedder: Embedder):
    """Search across block boundaries: 20,000 random unit vectors (three blocks)."""
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((20_000, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = NearDuplicateIndex(embedder, vector_dtype="float32")
    texts = [f"text {n}" for n in range(20_000)]
    index.add_many(texts, texts, vectors=vectors)

    rows, scores = index._search(vectors[[5, 8191, 8192, 19_999]])

    best = scores.argmax(axis=1)
    assert rows[np.arange(4), best].tolist() == [5, 8191, 8192, 19_999]
    np.testing.assert_allclose(scores.max(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("floor", [-1.0, 0.2, 0.5])
def test_the_search_finds_the_most_similar_rows_above_the_floor(embedder: Embedder, floor: float):
    """Against a brute-force ranking, over three blocks, with queries that have many kept
    rows above the floor (the lists fill in the first block) and queries that have few."""
    rng = np.random.default_rng(1)
    centre = rng.standard_normal(384).astype(np.float32)
    crowd = centre + 0.9 * rng.standard_normal((6_000, 384)).astype(np.float32)
    spread = rng.standard_normal((14_000, 384)).astype(np.float32)
    vectors = np.vstack([spread[:4_000], crowd, spread[4_000:]])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = NearDuplicateIndex(embedder, vector_dtype="float32")
    keys = [str(n) for n in range(len(vectors))]
    index.add_many(keys, keys, vectors=vectors)
    queries = vectors[[3, 4_500, 9_000, 12_000, 19_999]] + 0.3 * rng.standard_normal(
        (5, 384)
    ).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    rows, scores = index._search(queries, floor=floor)

    everything = queries @ vectors.T
    for n in range(len(queries)):
        expected = np.sort(everything[n][everything[n] >= floor])[::-1][: rows.shape[1]]
        found = np.sort(scores[n][rows[n] >= 0])[::-1]
        np.testing.assert_allclose(found, expected, rtol=0, atol=1e-6)
        kept = rows[n] >= 0
        np.testing.assert_allclose(everything[n][rows[n][kept]], scores[n][kept], atol=1e-6)


async def test_the_async_variant_decides_the_same(embedder: Embedder):
    index = NearDuplicateIndex(embedder)

    matches = await index.acheck_and_add_many(
        ["The river flooded the town.", "The town was flooded by the river."], ["a", "b"]
    )

    assert matches[0] is None
    assert matches[1] is not None
    assert matches[1].key == "a"


def test_index_level_diversity(embedder: Embedder):
    index = NearDuplicateIndex(embedder)
    texts = [p.a for p in planted_pairs()[:30]]
    index.add_many(texts, texts)
    from datamill.nlp.diversity import mean_pairwise_distance

    assert index.mean_pairwise_distance() == pytest.approx(
        mean_pairwise_distance(embedder.embed(texts)), abs=2e-3
    )


def test_mismatched_lengths_are_refused(embedder: Embedder):
    index = NearDuplicateIndex(embedder)

    with pytest.raises(ValueError, match="length"):
        index.check_and_add_many(["a", "b"], ["k"])
    with pytest.raises(ValueError, match="length"):
        index.add_many(["a"], ["k"], vectors=np.zeros((2, 384), dtype=np.float32))
