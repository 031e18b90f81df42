"""Lexical near-duplicates: MinHash signatures and an LSH index over them, in numpy.

A text's *shingles* are the distinct 5-character windows of its normalised form
(`datamill.nlp.canonical.fold_string`). Two texts' Jaccard similarity is the share of
shingles they have in common; a *signature* of ``num_perm`` minimum hash values estimates it:
the share of positions where two signatures agree (standard error ``sqrt(J(1-J)/num_perm)``,
0.05 at J = 0.8 with 64 values). Character shingles suit short texts: one changed word in a
15-word sentence still leaves most of its windows intact.

`LshIndex` finds, among many stored signatures, the ones likely above a Jaccard threshold
without comparing them all: signatures are cut into ``bands`` of ``rows`` values, and two
texts are candidates when any band agrees entirely (probability ``1 - (1 - J^rows)^bands``;
with 16 bands of 4 rows: 0.99 at J = 0.7, 0.12 at J = 0.3). Candidates are then scored on
their whole signatures. The band keys are kept as sorted numpy arrays searched with
``searchsorted`` (rebuilt geometrically, recent rows scanned directly): about 200 bytes a
text where Python dicts of buckets take about 1.5 KB.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from datamill.nlp.canonical import fold_string

DEFAULT_NUM_PERM = 64
DEFAULT_BANDS = 16
SHINGLE_SIZE = 5

Signatures = npt.NDArray[np.uint32]
_Item = TypeVar("_Item", bound=np.generic)
_U64 = npt.NDArray[np.uint64]
# A rolling polynomial over code points, then splitmix64's finaliser to spread the bits.
_BASE = np.uint64(0x100000001B3)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _mix(values: _U64) -> _U64:
    """splitmix64's finaliser, element-wise (uint64 arithmetic wraps, as intended)."""
    values = values ^ (values >> np.uint64(30))
    values = values * _MIX1
    values = values ^ (values >> np.uint64(27))
    values = values * _MIX2
    mixed: _U64 = values ^ (values >> np.uint64(31))
    return mixed


class MinHasher:
    """MinHash signatures of texts' character shingles; deterministic for a given seed."""

    def __init__(
        self, *, num_perm: int = DEFAULT_NUM_PERM, shingle_size: int = SHINGLE_SIZE, seed: int = 1
    ) -> None:
        self.num_perm = num_perm
        self.shingle_size = shingle_size
        rng = np.random.default_rng(seed)
        # num_perm hash functions h(x) = (a*x + b) mod 2^64, top 32 bits (multiply-shift).
        self._a = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False) | 1
        self._b = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False)
        self._powers = _BASE ** np.arange(shingle_size - 1, -1, -1, dtype=np.uint64)

    def shingles(self, text: str) -> _U64:
        """The distinct shingle hashes of ``text`` (its normalised form)."""
        points = np.frombuffer(fold_string(text).encode("utf-32-le"), dtype=np.uint32)
        k = self.shingle_size
        if len(points) < k:  # a short text is one shingle
            points = np.concatenate([points, np.zeros(k - len(points), dtype=np.uint32)])
        windows = np.lib.stride_tricks.sliding_window_view(points.astype(np.uint64), k)
        hashes: _U64 = np.unique(_mix(windows @ self._powers))
        return hashes

    def signature(self, text: str) -> Signatures:
        """A ``(num_perm,)`` uint32 MinHash signature."""
        shingles = self.shingles(text)
        hashed = shingles[:, None] * self._a[None, :] + self._b[None, :]
        minimum: Signatures = (hashed.min(axis=0) >> np.uint64(32)).astype(np.uint32)
        return minimum

    def signatures(self, texts: Sequence[str]) -> Signatures:
        """An ``(len(texts), num_perm)`` uint32 array of signatures."""
        out = np.empty((len(texts), self.num_perm), dtype=np.uint32)
        for row, text in enumerate(texts):
            out[row] = self.signature(text)
        return out


def estimated_jaccard(a: Signatures, b: Signatures) -> npt.NDArray[np.float64]:
    """Jaccard estimates between signature rows (broadcasting over leading axes)."""
    share: npt.NDArray[np.float64] = (a == b).mean(axis=-1)
    return share


class LshIndex:
    """Stored MinHash signatures, searchable for their most similar row.

    Rows are numbered in insertion order from 0. `best` finds, for each query, the stored
    row whose signature agrees most with it among the rows sharing a band with it (all rows
    above about J = 0.7 in practice); a row sharing no band is never reported.
    """

    def __init__(self, *, num_perm: int = DEFAULT_NUM_PERM, bands: int = DEFAULT_BANDS) -> None:
        if num_perm % bands:
            raise ValueError("num_perm must be a multiple of bands")
        self.num_perm = num_perm
        self.bands = bands
        self.rows_per_band = num_perm // bands
        rng = np.random.default_rng(7)
        self._coefficients = rng.integers(1, 2**63, size=self.rows_per_band, dtype=np.uint64)
        # A salt per band, so equal values in two bands make two different keys and every
        # band's keys can share one sorted array.
        self._salts = rng.integers(0, 2**63, size=bands, dtype=np.uint64)
        self._signatures: Signatures = np.empty((0, num_perm), dtype=np.uint32)
        self._keys: _U64 = np.empty((0, bands), dtype=np.uint64)
        self._size = 0
        # The band keys of rows [0, _sorted_size), all bands together, sorted; and their rows.
        self._sorted_keys = np.empty(0, dtype=np.uint64)
        self._sorted_rows = np.empty(0, dtype=np.int32)
        self._sorted_size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Bytes held by the index's arrays (spare capacity included)."""
        return (
            self._signatures.nbytes
            + self._keys.nbytes
            + self._sorted_keys.nbytes
            + self._sorted_rows.nbytes
        )

    def band_keys(self, signatures: Signatures) -> _U64:
        """``(n, bands)`` uint64 keys: one hash per band of each signature."""
        grouped = signatures.reshape(len(signatures), self.bands, self.rows_per_band)
        return _mix((grouped.astype(np.uint64) @ self._coefficients) ^ self._salts)

    def add(self, signatures: Signatures) -> None:
        """Store signatures as the next rows."""
        count = len(signatures)
        if count == 0:
            return
        needed = self._size + count
        if needed > len(self._signatures):
            capacity = max(needed, 2 * len(self._signatures), 1024)
            self._signatures = _grown(self._signatures, capacity)
            self._keys = _grown(self._keys, capacity)
        self._signatures[self._size : needed] = signatures
        self._keys[self._size : needed] = self.band_keys(signatures)
        self._size = needed
        # Sorting again once the unsorted tail is a quarter of the sorted part keeps the
        # total sorting work O(n log n) and the tail short.
        if needed - self._sorted_size > max(4096, self._sorted_size // 4):
            self._sort()

    def _sort(self) -> None:
        flat = self._keys[: self._size].ravel()
        order = np.argsort(flat, kind="stable")
        self._sorted_keys = flat[order]
        self._sorted_rows = (order // self.bands).astype(np.int32)
        self._sorted_size = self._size

    def best(self, signatures: Signatures) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """For each query signature, the best candidate row (-1 if none) and its estimated
        Jaccard similarity (0.0 if none)."""
        rows = np.full(len(signatures), -1, dtype=np.int64)
        scores = np.zeros(len(signatures), dtype=np.float64)
        if not self._size or not len(signatures):
            return rows, scores
        queries, found = self._candidate_pairs(self.band_keys(signatures))
        if len(queries):
            similarity = estimated_jaccard(self._signatures[found], signatures[queries])
            # Best per query: sort by (query, similarity) and keep each query's last entry.
            order = np.lexsort((similarity, queries))
            last = np.flatnonzero(np.append(queries[order][1:] != queries[order][:-1], True))
            picked = order[last]
            rows[queries[picked]] = found[picked]
            scores[queries[picked]] = similarity[picked]
        return rows, scores

    def _candidate_pairs(
        self, query_keys: _U64
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(query, row) pairs sharing at least one band key, without repeats."""
        flat = query_keys.ravel()
        flat_query = np.arange(len(flat), dtype=np.int64) // self.bands
        pairs_q: list[npt.NDArray[np.int64]] = []
        pairs_r: list[npt.NDArray[np.int64]] = []
        if self._sorted_size:
            left = np.searchsorted(self._sorted_keys, flat, side="left")
            right = np.searchsorted(self._sorted_keys, flat, side="right")
            counts = right - left
            if counts.any():
                # Expand each query key's [left, right) range of the sorted keys.
                positions = np.repeat(left - np.cumsum(counts) + counts, counts)
                positions += np.arange(int(counts.sum()))
                pairs_q.append(np.repeat(flat_query, counts))
                pairs_r.append(self._sorted_rows[positions].astype(np.int64))
        tail = self._keys[self._sorted_size : self._size].ravel()
        if len(tail):
            # The other way round: the recent rows' keys looked up among the queries' keys.
            order = np.argsort(flat, kind="stable")
            ordered = flat[order]
            left = np.searchsorted(ordered, tail, side="left")
            right = np.searchsorted(ordered, tail, side="right")
            counts = right - left
            if counts.any():
                tail_rows = np.arange(len(tail), dtype=np.int64) // self.bands + self._sorted_size
                positions = np.repeat(left - np.cumsum(counts) + counts, counts)
                positions += np.arange(int(counts.sum()))
                pairs_q.append(flat_query[order[positions]])
                pairs_r.append(np.repeat(tail_rows, counts))
        if not pairs_q:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty
        pairs = np.unique(
            np.stack([np.concatenate(pairs_q), np.concatenate(pairs_r)], axis=1), axis=0
        )
        return pairs[:, 0], pairs[:, 1]


def _grown(array: npt.NDArray[_Item], capacity: int) -> npt.NDArray[_Item]:
    """A copy of ``array`` with room for ``capacity`` rows."""
    grown: npt.NDArray[_Item] = np.empty((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[: len(array)] = array
    return grown
