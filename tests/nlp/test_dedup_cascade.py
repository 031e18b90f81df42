"""The two-stage search: the static table finds the pairs worth asking the transformer
about, the transformer decides. It must decide like the transformer alone on the labelled
sets while embedding only the texts of such pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datamill.nlp import model_cache, static_embeddings
from datamill.nlp.dedup import (
    DEFAULT_THRESHOLD,
    PREFILTER_THRESHOLD,
    DuplicateKind,
    NearDuplicateIndex,
)
from datamill.nlp.embeddings import Embedder
from datamill.nlp.static_embeddings import DIMENSION, StaticEmbedder, shared_static_embedder
from tests.nlp.conftest import planted_pairs
from tests.nlp.test_dedup import PRECISION_FLOOR, RECALL_FLOOR, CountingEmbedder, _scores
from tests.nlp.test_dedup_pairs import _pairs


@pytest.fixture(scope="module")
def static() -> StaticEmbedder:
    model = shared_static_embedder()
    model.load()
    return model


def _cascade(static: StaticEmbedder, confirm: Embedder) -> NearDuplicateIndex:
    return NearDuplicateIndex(static, confirm=confirm)


def test_static_vectors_are_unit_length_and_the_same_for_the_same_text(static: StaticEmbedder):
    texts = ["The tenant must pay the rent.", "", "Rent is due from the tenant.", "   "]

    vectors = static.embed(texts)

    assert vectors.shape == (4, DIMENSION)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[[0, 2]], axis=1), 1.0, atol=1e-5)
    assert not vectors[[1, 3]].any()  # no word piece: similar to nothing
    assert np.array_equal(static.embed(texts[2:3])[0], vectors[2])
    assert np.array_equal(static.embed(list(reversed(texts)))[::-1], vectors)
    # Across the chunks a long list is embedded in, each row is still its own text's.
    many = [f"sample {n} about {'tea' if n % 3 else ''}" if n % 7 else "" for n in range(2_500)]
    together = static.embed(many)
    for n in (0, 1, 1_023, 1_024, 1_025, 2_047, 2_048, 2_499):
        np.testing.assert_allclose(together[n], static.embed([many[n]])[0], atol=1e-6)


def test_no_paraphrase_the_transformer_catches_falls_under_the_prefilter_threshold(
    static: StaticEmbedder, embedder: Embedder
):
    """What the cascade rests on: a pair the static cosine drops never reaches the
    transformer. On both labelled sets, every duplicate the transformer alone finds is above
    the prefilter threshold; a distinct pair above it only costs a transformer call."""
    sets = {
        "paraphrases": [(p.a, p.b, p.label == "paraphrase") for p in planted_pairs()],
        "dedup_pairs": [(str(p["a"]), str(p["b"]), p["label"] == "duplicate") for p in _pairs()],
    }
    for rows in sets.values():
        a, b = [r[0] for r in rows], [r[1] for r in rows]
        duplicate = np.array([r[2] for r in rows])
        static_cosines = (static.embed(a) * static.embed(b)).sum(axis=1)
        model_cosines = (embedder.embed(a) * embedder.embed(b)).sum(axis=1)
        caught = duplicate & (model_cosines >= DEFAULT_THRESHOLD)

        assert caught.sum() >= 90
        assert (static_cosines[caught] >= PREFILTER_THRESHOLD).all()
    # And it is a filter: unrelated texts (each pair's first against the next one's second)
    # mostly fall below it.
    pairs = planted_pairs()
    first = static.embed([p.a for p in pairs[:-1]])
    second = static.embed([p.b for p in pairs[1:]])
    assert ((first * second).sum(axis=1) < PREFILTER_THRESHOLD).mean() >= 0.8


def test_planted_paraphrases_are_caught_and_distinct_samples_kept(
    static: StaticEmbedder, embedder: Embedder
):
    pairs = planted_pairs()
    flagged = []
    for pair in pairs:
        index = _cascade(static, embedder)
        index.add(pair.a, "a")
        flagged.append(index.check(pair.b) is not None)

    precision, recall = _scores(flagged, pairs)
    assert precision >= PRECISION_FLOOR
    assert recall >= RECALL_FLOOR


def test_the_transformer_embeds_only_the_texts_of_pairs_the_table_found(
    static: StaticEmbedder, embedder: Embedder
):
    confirm = CountingEmbedder(embedder)
    index = _cascade(static, confirm)
    index.add_many(
        [
            "Honey never spoils if it is stored properly.",
            "The museum opens at nine on weekdays.",
            "Regular exercise lowers the risk of heart disease.",
        ],
        ["honey", "museum", "exercise"],
    )
    assert confirm.embedded == []  # keeping runs no transformer

    assert index.check("Quarterly revenue rose by four percent in Ohio.") is None
    assert confirm.embedded == []  # nothing near it: no transformer either

    match = index.check("On weekdays the museum opens at nine.")
    assert match is not None
    assert (match.key, match.kind) == ("museum", DuplicateKind.semantic)
    assert sorted(confirm.embedded) == [
        "On weekdays the museum opens at nine.",
        "The museum opens at nine on weekdays.",
    ]
    # A kept sample's transformer vector is computed once.
    index.check("The museum opens at nine every weekday.")
    assert confirm.embedded.count("The museum opens at nine on weekdays.") == 1


def test_computed_transformer_vectors_can_be_stored_and_given_back(
    static: StaticEmbedder, embedder: Embedder
):
    first = _cascade(static, embedder)
    first.add_many(["The museum opens at nine on weekdays."], ["museum"])
    assert first.check_and_add("On weekdays the museum opens at nine.", "again") is not None
    assert first.check_and_add("The library closes at six on Sundays.", "library") is None

    taken = dict(first.take_confirmed())
    assert "museum" in taken
    assert first.take_confirmed() == []  # each is handed over once

    confirm = CountingEmbedder(embedder)
    resumed = _cascade(static, confirm)
    resumed.add_many(["The museum opens at nine on weekdays."], ["museum"], confirmed=taken)
    assert resumed.check("On weekdays the museum opens at nine.") is not None
    assert confirm.embedded == ["On weekdays the museum opens at nine."]


def test_the_cascade_decides_like_the_transformer_on_the_planted_pairs(
    static: StaticEmbedder, embedder: Embedder
):
    """Same keep/drop decisions, pair by pair, as the transformer alone: the table only
    decides which pairs the transformer sees."""

    pairs = planted_pairs()
    agree = 0
    for pair in pairs:
        alone = NearDuplicateIndex(embedder)
        both = _cascade(static, embedder)
        alone.add(pair.a, "a")
        both.add(pair.a, "a")
        agree += (alone.check(pair.b) is None) == (both.check(pair.b) is None)
    assert agree / len(pairs) >= 0.97


def test_a_cache_that_cannot_be_written_distils_the_table_in_memory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    monkeypatch.setenv(model_cache.ENV_CACHE, str(blocked / "models"))
    made: list[Embedder] = []
    small = np.eye(30_522, DIMENSION, dtype=np.float32)

    def distilled(embedder: Embedder) -> np.ndarray:
        made.append(embedder)
        return small

    monkeypatch.setattr(static_embeddings, "distil", distilled)

    vectors = StaticEmbedder().embed(["a text"])

    assert len(made) == 1
    assert not made[0].quantized  # the packaged file, as the cached table is made
    assert vectors.shape == (1, DIMENSION)
    assert "static table is distilled in memory" in caplog.text
    assert not (blocked / "models").exists()


def test_a_lower_threshold_lowers_the_prefilter_cut_with_it(
    static: StaticEmbedder, embedder: Embedder
):
    """The cut was chosen for the default threshold: under it, pairs the table ranks low
    must still reach the transformer (a threshold of 0.01 makes nearly everything a
    duplicate)."""
    assert NearDuplicateIndex(static, confirm=embedder).prefilter_threshold == (PREFILTER_THRESHOLD)
    assert NearDuplicateIndex(static, confirm=embedder, threshold=0.9).prefilter_threshold == (
        PREFILTER_THRESHOLD
    )
    low = NearDuplicateIndex(static, confirm=embedder, threshold=0.2)
    assert low.prefilter_threshold == pytest.approx(PREFILTER_THRESHOLD - (DEFAULT_THRESHOLD - 0.2))
    kept, other = "The museum opens at nine on weekdays.", "Visitors enjoy the gallery's paintings."
    assert float((static.embed([kept]) * static.embed([other])).sum()) < PREFILTER_THRESHOLD
    assert float((embedder.embed([kept]) * embedder.embed([other])).sum()) >= 0.2
    low.add(kept, "museum")

    assert low.check(other) is not None
    assert _cascade(static, embedder).check(other) is None  # nothing near at the default
