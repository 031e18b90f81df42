"""Near-duplicate detection for generated samples: exact, lexical, then semantic.

A generation job keeps one `NearDuplicateIndex` of the samples it has accepted and asks it
about each new batch of candidates::

    index = NearDuplicateIndex()                       # the process's shared embedder
    index.rebuild((s.id, s.text) for s in dataset)     # a resumed job refills it first
    for sample, match in zip(batch, index.check_and_add_many(texts, ids)):
        if match is None: keep(sample)                 # added to the index already
        else: drop(sample, duplicate_of=match.key)

Each candidate goes through three tests, cheapest first, and stops at the first that
matches:

1. **exact**: the same `normalized_hash` as a kept sample;
2. **lexical**: an estimated Jaccard similarity of character 5-grams (MinHash, 64 values,
   LSH with 16 bands of 4) of at least ``lexical_threshold`` with a kept sample: a
   near-verbatim copy, caught without running the model;
3. **semantic**: a cosine similarity of all-MiniLM-L6-v2 embeddings of at least
   ``threshold`` with a kept sample: a paraphrase.

Candidates of one batch are compared with each other too: the decisions are exactly those of
calling `check_and_add` on each in turn, but the batch is embedded in one call and searched
with one matrix product per block of kept vectors. The search is exhaustive (no
approximation): its cost grows with kept samples x candidates, about 25 ns per pair here.

Memory per kept sample: the vector (768 bytes as float16, the default, or 1,536 as float32),
the MinHash signature and band keys (about 580 bytes), the exact hash and the caller's key
(about 150 bytes with a short key).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np
import numpy.typing as npt

from datamill.nlp.canonical import normalized_hash
from datamill.nlp.conflicts import ContentTokens, conflicting, content_tokens
from datamill.nlp.diversity import mean_pairwise_distance_from_sums
from datamill.nlp.embeddings import TextEmbedder, Vectors, shared_embedder
from datamill.nlp.minhash import LshIndex, MinHasher, Signatures, estimated_jaccard

# Chosen on tests/nlp/data/paraphrases.jsonl (docs/dedup.md has the sweep): the cosine
# above which two samples say the same thing, and the 5-gram Jaccard above which one is a
# near-verbatim copy of the other.
DEFAULT_THRESHOLD = 0.74
DEFAULT_LEXICAL_THRESHOLD = 0.8
# Kept vectors live in blocks of this many rows: the matrix grows without copying, and each
# block is converted to float32 for its matrix product in one go.
BLOCK_ROWS = 8192
# Kept samples looked at per candidate by the semantic test, most similar first: the best
# one may be a near-miss (another number, another entity), the next a real paraphrase.
NEIGHBOURS = 8
# With a confirming model: the cheap vectors' cosine at which a pair is worth asking it
# about at the default threshold (no duplicate of the labelled sets that the model finds
# is under it; docs/dedup.md; a lower threshold lowers it as much), and how many of the
# most similar kept samples are looked at (cheap vectors rank near-misses higher than the
# model does, so more).
PREFILTER_THRESHOLD = 0.58
PREFILTER_NEIGHBOURS = 32
# Of those, the most similar ones without a content conflict that the confirming model
# scores, per candidate (and as many among the batch's earlier candidates).
CONFIRMED_PER_CANDIDATE = 3


class DuplicateKind(StrEnum):
    """Which test found the duplicate."""

    exact = "exact"  # the same normalised hash
    lexical = "lexical"  # MinHash Jaccard estimate of character 5-grams
    semantic = "semantic"  # embedding cosine similarity


@dataclass(frozen=True, slots=True)
class DuplicateMatch:
    """A candidate is a duplicate of the kept sample ``key``."""

    key: str
    kind: DuplicateKind
    score: float  # 1.0 for exact, the Jaccard estimate for lexical, the cosine for semantic


def _hash64(text: str) -> int:
    return int(normalized_hash(text)[:16], 16)


class NearDuplicateIndex:
    """The samples a job has kept, searchable for exact, lexical and semantic duplicates.

    Guarantees: a batch call decides exactly as the same calls one by one would; a sample is
    added only when it is no duplicate (``check_and_add*``) or when told (``add*``,
    `rebuild`); calls are serialised by a lock, so threads may share an index. Keys are the
    caller's (a sample id) and are what a match reports.
    """

    def __init__(
        self,
        embedder: TextEmbedder | None = None,
        *,
        confirm: TextEmbedder | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        prefilter_threshold: float | None = None,
        lexical_threshold: float = DEFAULT_LEXICAL_THRESHOLD,
        vector_dtype: Literal["float16", "float32"] = "float16",
    ) -> None:
        """``embedder`` (the searched vectors) defaults to the process's `shared_embedder`
        (loaded on first use). With ``confirm``, ``embedder`` is a cheap prefilter: a pair
        whose cheap cosine reaches ``prefilter_threshold`` is scored by ``confirm``, and
        ``threshold`` applies to that score; ``confirm`` embeds only such pairs' texts.
        ``prefilter_threshold`` None: `PREFILTER_THRESHOLD`, lowered by as much as
        ``threshold`` is under `DEFAULT_THRESHOLD` (the cut was chosen for the default).
        A ``lexical_threshold`` above 1 turns the lexical test off."""
        self.embedder: TextEmbedder = embedder or shared_embedder()
        self.confirm = confirm
        self.threshold = threshold
        if prefilter_threshold is None:
            prefilter_threshold = PREFILTER_THRESHOLD - max(0.0, DEFAULT_THRESHOLD - threshold)
        self.prefilter_threshold = prefilter_threshold
        self.lexical_threshold = lexical_threshold
        self._width = NEIGHBOURS if confirm is None else PREFILTER_NEIGHBOURS
        self._dtype = np.dtype(vector_dtype)
        self._hasher = MinHasher()
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self._keys: list[str] = []
        self._exact: dict[int, int] = {}  # 64 bits of the normalised hash -> first row
        self._lsh = LshIndex(num_perm=self._hasher.num_perm)
        self._blocks: list[npt.NDArray[np.floating]] = []
        self._tokens: list[ContentTokens] = []  # per kept row, for `conflicting`
        self._rows: dict[str, int] = {}  # key -> its first row
        # With a confirming model: each kept row's text, its confirming vector once known,
        # and the rows whose vector was computed here since `take_confirmed` last ran.
        self._texts: list[str] = []
        self._confirmed: dict[int, Vectors] = {}
        self._fresh: list[int] = []

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def nbytes(self) -> int:
        """Bytes held in arrays: vectors and MinHash data (Python objects not counted)."""
        return sum(block.nbytes for block in self._blocks) + self._lsh.nbytes

    # -- asking ---------------------------------------------------------------------------

    def check(self, text: str) -> DuplicateMatch | None:
        """The kept sample ``text`` duplicates, or None; nothing is added."""
        return self.check_many([text])[0]

    def check_many(self, texts: Sequence[str]) -> list[DuplicateMatch | None]:
        """`check` for each text, against the kept samples only (not each other)."""
        with self._lock:
            return self._decide(texts, keys=None)

    def check_and_add(self, text: str, key: str) -> DuplicateMatch | None:
        """`check`, and keep ``text`` under ``key`` when it is no duplicate."""
        return self.check_and_add_many([text], [key])[0]

    def check_and_add_many(
        self,
        texts: Sequence[str],
        keys: Sequence[str],
        *,
        vectors: Vectors | None = None,
        confirmed: Mapping[str, Vectors] | None = None,
    ) -> list[DuplicateMatch | None]:
        """One decision per candidate, in order; each is compared with the kept samples and
        with the candidates before it that were kept. The kept ones are added. ``vectors``
        (the texts' embeddings, if stored elsewhere) saves running the model; so does
        ``confirmed``, the confirming model's vectors of some of them, by key."""
        if len(texts) != len(keys) or (vectors is not None and len(vectors) != len(texts)):
            raise ValueError("texts, keys and vectors differ in length")
        with self._lock:
            return self._decide(texts, keys=keys, given=vectors, confirmed=confirmed)

    async def acheck_and_add_many(
        self, texts: Sequence[str], keys: Sequence[str]
    ) -> list[DuplicateMatch | None]:
        """`check_and_add_many` in a worker thread, for callers on an event loop."""
        return await asyncio.to_thread(self.check_and_add_many, texts, keys)

    # -- filling --------------------------------------------------------------------------

    def add(self, text: str, key: str) -> None:
        """Keep ``text`` under ``key`` without checking it."""
        self.add_many([text], [key])

    def add_many(
        self,
        texts: Sequence[str],
        keys: Sequence[str],
        *,
        vectors: Vectors | None = None,
        confirmed: Mapping[str, Vectors] | None = None,
    ) -> None:
        """Keep every text without checking; ``vectors`` (their embeddings, if stored
        elsewhere) saves running the model, ``confirmed`` the confirming model's vectors of
        some of them, by key (the others are computed when a pair needs them)."""
        if len(texts) != len(keys) or (vectors is not None and len(vectors) != len(texts)):
            raise ValueError("texts, keys and vectors differ in length")
        if vectors is None:
            vectors = self.embedder.embed(texts)
        hashes = [_hash64(text) for text in texts]
        signatures = self._hasher.signatures(texts)
        tokens = [content_tokens(text) for text in texts]
        known = {
            n: np.asarray(confirmed[key], dtype=np.float32)
            for n, key in enumerate(keys)
            if confirmed and key in confirmed
        }
        with self._lock:
            self._append(
                list(keys),
                hashes,
                signatures,
                np.asarray(vectors, dtype=np.float32),
                tokens,
                list(texts),
                known,
            )

    def rebuild(self, samples: Iterable[tuple[str, str]], *, batch_size: int = 1024) -> None:
        """Empty the index, then keep every ``(key, text)`` of ``samples`` (a resumed job's
        dataset), embedding them ``batch_size`` at a time."""
        with self._lock:
            self._clear()
        keys: list[str] = []
        texts: list[str] = []
        for key, text in samples:
            keys.append(key)
            texts.append(text)
            if len(texts) == batch_size:
                self.add_many(texts, keys)
                keys, texts = [], []
        if texts:
            self.add_many(texts, keys)

    def vectors_of(self, keys: Sequence[str]) -> Vectors:
        """The kept vectors of ``keys`` (float32, one row each, in order); KeyError for a
        key not kept."""
        with self._lock:
            out = np.empty((len(keys), self.embedder.dimension), dtype=np.float32)
            for n, key in enumerate(keys):
                block, row = divmod(self._rows[key], BLOCK_ROWS)
                out[n] = self._blocks[block][row]
            return out

    def take_confirmed(self) -> list[tuple[str, Vectors]]:
        """The confirming model's vectors computed since the last call, by key (to store
        them: a later run given them back runs the model less)."""
        with self._lock:
            fresh = [(self._keys[row], self._confirmed[row]) for row in self._fresh]
            self._fresh = []
            return fresh

    # -- diversity --------------------------------------------------------------------------

    def mean_pairwise_distance(self) -> float:
        """Mean cosine distance over all pairs of kept samples (exact, O(n) in time)."""
        total = np.zeros(self.embedder.dimension, dtype=np.float64)
        squares = 0.0
        with self._lock:
            for rows in self._filled_blocks():
                block = rows.astype(np.float64)
                total += block.sum(axis=0)
                squares += float(np.einsum("ij,ij->", block, block))
            count = len(self)
        return mean_pairwise_distance_from_sums(total, squares, count)

    # -- inside -----------------------------------------------------------------------------

    def _decide(
        self,
        texts: Sequence[str],
        *,
        keys: Sequence[str] | None,
        given: Vectors | None = None,
        confirmed: Mapping[str, Vectors] | None = None,
    ) -> list[DuplicateMatch | None]:
        """Decide each candidate; with ``keys``, also against the batch's kept candidates,
        which are then added. The cheap tests run on the whole batch first, the model on
        what they left open, then a short loop settles the order within the batch."""
        count = len(texts)
        hashes = [_hash64(text) for text in texts]
        tokens = [content_tokens(text) for text in texts]
        signatures = self._hasher.signatures(texts)
        band_keys = self._lsh.band_keys(signatures)
        lexical_rows, lexical_scores = self._lsh.best(signatures)
        stored_exact = [self._exact.get(h) for h in hashes]
        # Embed only what the cheap tests against the kept samples left open.
        open_rows = [
            i
            for i in range(count)
            if stored_exact[i] is None
            and (
                lexical_scores[i] < self.lexical_threshold
                or conflicting(tokens[i], self._tokens[lexical_rows[i]], swaps=False)
            )
        ]
        if given is not None:
            vectors = np.asarray(given, dtype=np.float32)
        else:
            vectors = np.zeros((count, self.embedder.dimension), dtype=np.float32)
        semantic_rows = np.full((count, self._width), -1, dtype=np.int64)
        semantic_scores = np.full((count, self._width), -np.inf, dtype=np.float32)
        floor = self.threshold if self.confirm is None else self.prefilter_threshold
        if open_rows:
            if given is None:
                vectors[open_rows] = self.embedder.embed([texts[i] for i in open_rows])
            found_rows, found_scores = self._search(vectors[open_rows], floor=floor)
            semantic_rows[open_rows] = found_rows
            semantic_scores[open_rows] = found_scores

        names = list(keys) if keys is not None else [""] * count
        decisions: list[DuplicateMatch | None] = []
        kept: list[int] = []  # candidates of this batch kept so far (none when checking only)
        kept_hashes: dict[int, int] = {}
        # The batch's kept candidates by LSH band key, and the candidates' cosines with each
        # other: one product for the batch, not one per candidate.
        buckets: dict[tuple[int, int], list[int]] = {}
        peer_similarity = vectors @ vectors.T if keys is not None and count > 1 else None
        confirmation: _Confirmation | None = None
        if self.confirm is not None:
            confirmation = _Confirmation(self, texts, tokens, names, confirmed or {})
            confirmation.prepare(open_rows, semantic_rows, semantic_scores, peer_similarity)
        for i in range(count):
            match: DuplicateMatch | None = None
            stored = stored_exact[i]
            if stored is not None:
                match = DuplicateMatch(self._keys[stored], DuplicateKind.exact, 1.0)
            elif hashes[i] in kept_hashes:
                match = DuplicateMatch(names[kept_hashes[hashes[i]]], DuplicateKind.exact, 1.0)
            if match is None:
                match = self._lexical(
                    i, buckets, names, tokens, signatures, band_keys, lexical_rows, lexical_scores
                )
            if match is None and confirmation is not None:
                match = confirmation.match(i, kept, semantic_rows, semantic_scores, peer_similarity)
            elif match is None:
                match = self._semantic(
                    i, kept, names, tokens, peer_similarity, semantic_rows, semantic_scores
                )
            decisions.append(match)
            if match is None and keys is not None:
                kept.append(i)
                kept_hashes.setdefault(hashes[i], i)
                for band, value in enumerate(band_keys[i].tolist()):
                    buckets.setdefault((band, value), []).append(i)
        if keys is not None and kept:
            self._append(
                [keys[i] for i in kept],
                [hashes[i] for i in kept],
                signatures[kept],
                vectors[kept],
                [tokens[i] for i in kept],
                [texts[i] for i in kept],
                confirmation.known(kept) if confirmation else {},
                fresh=confirmation.computed(kept) if confirmation else frozenset(),
            )
        return decisions

    def _lexical(
        self,
        i: int,
        buckets: dict[tuple[int, int], list[int]],
        names: list[str],
        tokens: list[ContentTokens],
        signatures: Signatures,
        band_keys: npt.NDArray[np.uint64],
        rows: npt.NDArray[np.int64],
        scores: npt.NDArray[np.float64],
    ) -> DuplicateMatch | None:
        """The best lexical match of candidate ``i``: a kept sample, or a kept candidate;
        none when the best one has another number, entity or rare word (a near-miss that
        shares most of its characters: "within 30 days" / "within 60 days")."""
        best_score = float(scores[i])
        best_key = self._keys[rows[i]] if rows[i] >= 0 else None
        best_tokens = self._tokens[rows[i]] if rows[i] >= 0 else None
        # As the LSH index does: only kept candidates sharing a band are compared.
        peers = sorted(
            {
                j
                for band, value in enumerate(band_keys[i].tolist())
                for j in buckets.get((band, value), ())
            }
        )
        if peers:
            similarity = estimated_jaccard(signatures[peers], signatures[i])
            pick = int(np.argmax(similarity))
            if similarity[pick] > best_score:
                best_score = float(similarity[pick])
                best_key = names[peers[pick]]
                best_tokens = tokens[peers[pick]]
        if best_key is None or best_score < self.lexical_threshold:
            return None
        if best_tokens is not None and conflicting(tokens[i], best_tokens, swaps=False):
            return None
        return DuplicateMatch(best_key, DuplicateKind.lexical, best_score)

    def _semantic(
        self,
        i: int,
        kept: list[int],
        names: list[str],
        tokens: list[ContentTokens],
        peer_similarity: npt.NDArray[np.float32] | None,
        rows: npt.NDArray[np.int64],
        scores: npt.NDArray[np.float32],
    ) -> DuplicateMatch | None:
        """The most similar sample at or above the threshold, kept or a kept candidate,
        whose content tokens do not conflict with candidate ``i``'s (`nlp.conflicts`)."""
        found: list[tuple[float, str, ContentTokens]] = [
            (float(score), self._keys[row], self._tokens[row])
            for row, score in zip(rows[i], scores[i], strict=True)
            if row >= 0 and score >= self.threshold
        ]
        if kept and peer_similarity is not None:
            similarity = peer_similarity[kept, i]
            found += [
                (float(similarity[n]), names[kept[n]], tokens[kept[n]])
                for n in np.flatnonzero(similarity >= self.threshold)
            ]
        for score, key, other in sorted(found, key=lambda entry: -entry[0]):
            if not conflicting(tokens[i], other):
                return DuplicateMatch(key, DuplicateKind.semantic, score)
        return None

    def _search(
        self, queries: Vectors, *, floor: float = -1.0
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """The most similar kept rows at or above ``floor`` for each query vector (as many
        as the index looks at: -1 where fewer), and their cosines, as ``(queries, width)``
        arrays. A block's kept row is ranked only when it beats both ``floor`` and the
        weakest of the query's list so far, so once the lists fill, a block costs its
        matrix product and a comparison, not a partition of every row."""
        width = self._width
        rows = np.full((len(queries), width), -1, dtype=np.int64)
        scores = np.full((len(queries), width), -np.inf, dtype=np.float32)
        offset = 0
        for block in self._filled_blocks():
            similarity = queries @ block.astype(np.float32, copy=False).T  # (q, block rows)
            cut = np.maximum(scores.min(axis=1), np.float32(floor))
            above = similarity >= cut[:, None]
            counts = above.sum(axis=1)
            hot = np.flatnonzero(counts)
            if len(hot):
                top = np.full((len(hot), width), -1, dtype=np.int64)
                top_scores = np.full((len(hot), width), -np.inf, dtype=np.float32)
                crowded = counts[hot] > width  # more entries than the list holds: partition
                if crowded.any():
                    many = np.flatnonzero(crowded)
                    near = similarity[hot[many]]
                    picked = np.argpartition(near, -width, axis=1)[:, -width:]
                    top[many] = picked
                    top_scores[many] = near[np.arange(len(many))[:, None], picked]
                few = np.flatnonzero(~crowded)
                if len(few):  # at most `width` entries each: take them as they are
                    at, column = np.nonzero(above[hot[few]])
                    slot = np.arange(len(at)) - np.searchsorted(at, np.arange(len(few)))[at]
                    top[few[at], slot] = column
                    top_scores[few[at], slot] = similarity[hot[few[at]], column]
                top = np.where(top >= 0, top + offset, -1)
                lines = np.arange(len(hot))[:, None]
                merged_rows = np.concatenate([rows[hot], top], axis=1)
                merged_scores = np.concatenate([scores[hot], top_scores], axis=1)
                best = np.argpartition(merged_scores, -width, axis=1)[:, -width:]
                rows[hot] = merged_rows[lines, best]
                scores[hot] = merged_scores[lines, best]
            offset += len(block)
        return rows, scores

    def _filled_blocks(self) -> Iterable[npt.NDArray[np.floating]]:
        remaining = len(self._keys)
        for block in self._blocks:
            if remaining <= 0:
                return
            yield block[: min(remaining, len(block))]
            remaining -= len(block)

    def _append(
        self,
        keys: list[str],
        hashes: list[int],
        signatures: Signatures,
        vectors: Vectors,
        tokens: list[ContentTokens],
        texts: list[str],
        confirmed: dict[int, Vectors],
        *,
        fresh: set[int] | frozenset[int] = frozenset(),
    ) -> None:
        """Keep these rows; ``confirmed`` and ``fresh`` are by position in them (the
        confirming model's vectors known, and those of them computed here)."""
        first = len(self._keys)
        for offset, value in enumerate(hashes):
            self._exact.setdefault(value, first + offset)
        self._lsh.add(signatures)
        written = 0
        while written < len(vectors):
            row = first + written
            block_index, block_row = divmod(row, BLOCK_ROWS)
            if block_index == len(self._blocks):
                self._blocks.append(
                    np.empty((BLOCK_ROWS, self.embedder.dimension), dtype=self._dtype)
                )
            take = min(BLOCK_ROWS - block_row, len(vectors) - written)
            self._blocks[block_index][block_row : block_row + take] = vectors[
                written : written + take
            ]
            written += take
        for offset, key in enumerate(keys):
            self._rows.setdefault(key, first + offset)
        self._keys.extend(keys)
        self._tokens.extend(tokens)
        if self.confirm is not None:
            self._texts.extend(texts)
            for offset, vector in confirmed.items():
                self._confirmed[first + offset] = vector
            self._fresh.extend(first + offset for offset in sorted(fresh))


class _Confirmation:
    """One batch's semantic test with a confirming model: the cheap vectors rank a
    candidate's kept neighbours and earlier kept candidates, the `CONFIRMED_PER_CANDIDATE`
    most similar without a content conflict are scored by the model, and the most similar
    at or above the threshold is the match. `prepare` embeds, in one call, the texts such
    pairs will most likely need; `match` embeds any other it needs on the spot, so a batch
    decides exactly as the same candidates one by one."""

    def __init__(
        self,
        index: NearDuplicateIndex,
        texts: Sequence[str],
        tokens: list[ContentTokens],
        names: list[str],
        given: Mapping[str, Vectors],
    ) -> None:
        assert index.confirm is not None
        self._index = index
        self._model = index.confirm
        self._texts = texts
        self._tokens = tokens
        self._names = names
        self._vectors: dict[int, Vectors] = {
            i: np.asarray(given[name], dtype=np.float32)
            for i, name in enumerate(names)
            if name and name in given
        }
        self._computed: set[int] = set()

    def known(self, candidates: list[int]) -> dict[int, Vectors]:
        """The model's vectors of ``candidates`` known so far, by position in the list."""
        return {n: self._vectors[i] for n, i in enumerate(candidates) if i in self._vectors}

    def computed(self, candidates: list[int]) -> set[int]:
        """Positions in ``candidates`` of those whose vector the model computed here."""
        return {n for n, i in enumerate(candidates) if i in self._computed}

    def prepare(
        self,
        open_rows: list[int],
        rows: npt.NDArray[np.int64],
        scores: npt.NDArray[np.float32],
        peer_similarity: npt.NDArray[np.float32] | None,
    ) -> None:
        """Embed at once what `match` will most likely ask for: each open candidate with its
        nearest non-conflicting kept samples and earlier candidates (whether or not those
        end up kept)."""
        index = self._index
        candidates: set[int] = set()
        kept_rows: set[int] = set()
        for i in open_rows:
            neighbours = self._nearest(
                i, [(float(scores[i, s]), int(rows[i, s]), -1) for s in range(rows.shape[1])]
            )
            if peer_similarity is not None:
                neighbours += self._nearest(i, self._peers(i, np.arange(i), peer_similarity))
            if neighbours:
                candidates.add(i)
            for _, row, peer in neighbours:
                if row >= 0:
                    kept_rows.add(row)
                else:
                    candidates.add(peer)
        wanted = sorted(candidates - self._vectors.keys())
        missing = sorted(kept_rows - index._confirmed.keys())
        if wanted or missing:
            self._embed(wanted, missing)

    def match(
        self,
        i: int,
        kept: list[int],
        rows: npt.NDArray[np.int64],
        scores: npt.NDArray[np.float32],
        peer_similarity: npt.NDArray[np.float32] | None,
    ) -> DuplicateMatch | None:
        """Candidate ``i``'s semantic match among the kept samples and ``kept`` (the batch's
        kept candidates so far), or None."""
        options = [(float(scores[i, s]), int(rows[i, s]), -1) for s in range(rows.shape[1])]
        if kept and peer_similarity is not None:
            # One by one, a kept candidate would be a kept sample, ranked with the others:
            # the list holds the `PREFILTER_NEIGHBOURS` most similar of both.
            options += self._peers(i, kept, peer_similarity)
            options = sorted(options, key=lambda o: -o[0])[: rows.shape[1]]
        chosen = self._nearest(i, options)
        if not chosen:
            return None
        self._embed(
            [i] if i not in self._vectors else [],
            sorted({row for _, row, _ in chosen if row >= 0} - self._index._confirmed.keys()),
        )
        self._embed(sorted({j for _, row, j in chosen if row < 0} - self._vectors.keys()), [])
        best: DuplicateMatch | None = None
        for _, row, peer in chosen:
            other = self._index._confirmed[row] if row >= 0 else self._vectors[peer]
            score = float(self._vectors[i] @ other)
            key = self._index._keys[row] if row >= 0 else self._names[peer]
            if score >= self._index.threshold and (best is None or score > best.score):
                best = DuplicateMatch(key, DuplicateKind.semantic, score)
        return best

    def _peers(
        self,
        i: int,
        earlier: Sequence[int] | npt.NDArray[np.int64],
        peer_similarity: npt.NDArray[np.float32],
    ) -> list[tuple[float, int, int]]:
        """The batch's ``earlier`` candidates most similar to ``i`` at or above the
        prefilter threshold (as many as the search lists), as `_nearest` options."""
        among = np.asarray(earlier, dtype=np.int64)
        if not len(among):
            return []
        similarity = peer_similarity[among, i]
        near = np.flatnonzero(similarity >= self._index.prefilter_threshold)
        near = near[np.argsort(-similarity[near], kind="stable")][: self._index._width]
        return [(float(similarity[n]), -1, int(among[n])) for n in near]

    def _nearest(
        self, i: int, options: list[tuple[float, int, int]]
    ) -> list[tuple[float, int, int]]:
        """Of ``options`` (cheap cosine, kept row or -1, candidate or -1), the most similar
        at or above the prefilter threshold whose content tokens do not conflict with
        candidate ``i``'s: at most `CONFIRMED_PER_CANDIDATE`, most similar first."""
        floor = self._index.prefilter_threshold
        chosen: list[tuple[float, int, int]] = []
        for option in sorted(options, key=lambda o: -o[0]):
            score, row, peer = option
            if score < floor:
                break
            if row < 0 and peer < 0:
                continue
            other = self._index._tokens[row] if row >= 0 else self._tokens[peer]
            if not conflicting(self._tokens[i], other):
                chosen.append(option)
                if len(chosen) == CONFIRMED_PER_CANDIDATE:
                    break
        return chosen

    def _embed(self, candidates: list[int], kept_rows: list[int]) -> None:
        """Run the model on these candidates' and kept rows' texts, and remember them."""
        if not candidates and not kept_rows:
            return
        index = self._index
        vectors = self._model.embed(
            [self._texts[i] for i in candidates] + [index._texts[r] for r in kept_rows]
        )
        for n, i in enumerate(candidates):
            self._vectors[i] = vectors[n]
            self._computed.add(i)
        for n, row in enumerate(kept_rows, start=len(candidates)):
            index._confirmed[row] = vectors[n]
            index._fresh.append(row)
