"""Static sentence vectors: a word-piece table distilled from all-MiniLM-L6-v2 on this
machine, for a first, cheap pass of the near-duplicate search.

The table is made once from the packaged model file (nothing is downloaded) and cached
(`nlp.model_cache`), as model2vec distils a sentence transformer: each of the 30,522 word
pieces goes through the transformer alone (``[CLS] piece [SEP]``), its output mean-pooled;
the 384-wide rows are reduced to their `DIMENSION` principal components after the first
(signs fixed so that each component's largest loading is positive: a table made elsewhere
agrees with this one), then weighted down for frequent pieces (smooth inverse frequency with a Zipf
prior over the vocabulary's order, which for this vocabulary follows frequency). A text's
vector is the mean of its word pieces' rows, at unit length. About 16 s of the model, once;
then about 14,000 texts a second, against a few hundred through the transformer.

Alone, these vectors are a weaker judge of paraphrase than the transformer's (measured on
tests/nlp/data/dedup_pairs.jsonl: docs/dedup.md), so `nlp.dedup` uses them only to find
the pairs worth asking the transformer about.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from datamill.nlp import model_cache
from datamill.nlp.embeddings import Embedder, Vectors, model_path, tokenizer_path

DIMENSION = 256
# Bump when the recipe changes: the table's file name and the stored vectors' model name.
RECIPE = 2
MODEL_ID = f"all-MiniLM-L6-v2-static{DIMENSION}-r{RECIPE}"
# Smooth inverse frequency: a piece's weight is SIF / (SIF + its Zipf probability).
SIF = 1e-4
# Word pieces per text that count (the rest of a very long text is left out).
MAX_TOKENS = 2048
_DISTIL_BATCH = 512
_EMBED_CHUNK = 1024

_log = logging.getLogger(__name__)
_CLS, _SEP = 101, 102


def distil(embedder: Embedder) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The ``(vocabulary, DIMENSION)`` float32 table, from ``embedder``'s transformer."""
    loaded = embedder._load()
    session = loaded.session
    size = loaded.tokenizer.get_vocab_size()
    rows = np.empty((size, 384), dtype=np.float32)
    for start in range(0, size, _DISTIL_BATCH):
        ids = np.arange(start, min(size, start + _DISTIL_BATCH), dtype=np.int64)
        inputs = np.stack([np.full_like(ids, _CLS), ids, np.full_like(ids, _SEP)], axis=1)
        hidden = session.run(
            None,
            {
                "input_ids": inputs,
                "attention_mask": np.ones_like(inputs),
                "token_type_ids": np.zeros_like(inputs),
            },
        )[0]
        rows[start : start + len(ids)] = hidden.mean(axis=1)
    centred = rows.astype(np.float64) - rows.mean(axis=0, dtype=np.float64)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    # The first component is dropped ("all but the top"): it is shared by the pieces of
    # common words, so texts of unrelated common words looked alike along it (measured:
    # texts of the generation benchmark with a neighbour above the prefilter threshold,
    # 15% -> 4%, with no labelled duplicate falling under it).
    components = components[1 : DIMENSION + 1]
    signs = np.sign(components[np.arange(DIMENSION), np.abs(components).argmax(axis=1)])
    reduced = centred @ (components * signs[:, None]).T
    zipf = 1.0 / np.arange(2, size + 2, dtype=np.float64)
    weights = SIF / (SIF + zipf / zipf.sum())
    table: np.ndarray[Any, np.dtype[np.float32]] = (reduced * weights[:, None]).astype(np.float32)
    return table


def table_file(cache: Path | None = None) -> Path:
    """The cached table for the packaged model, distilled first if missing or corrupt."""
    source = model_path()
    cache = cache or model_cache.cache_dir()
    name = f"minilm-l6-static{DIMENSION}-r{RECIPE}-{model_cache.digest(source)}.npy"

    def build(path: Path) -> None:
        with path.open("wb") as handle:
            np.save(handle, distil(Embedder(model_file=source, quantize=False)))

    return model_cache.cached(cache / name, build)


def load_table() -> np.ndarray[Any, np.dtype[np.float32]]:
    """The table from the cache (made there first if missing); where the cache cannot be
    written, distilled in memory for this process, with a warning."""
    cache = model_cache.cache_dir()
    if model_cache.writable(cache):
        table: np.ndarray[Any, np.dtype[np.float32]] = np.load(table_file(cache))
        return table
    _log.warning(
        "embeddings: %s cannot be written, so the static table is distilled in memory "
        "(about 16 s in each process); set %s to a writable directory",
        cache,
        model_cache.ENV_CACHE,
    )
    return distil(Embedder(model_file=model_path(), quantize=False))


class StaticEmbedder:
    """Unit-norm float32 vectors (`DIMENSION` wide): the mean of a text's word pieces' rows
    in the distilled table. The same text always gives the same vector; a text with no
    word piece gives zeros (similar to nothing). Loads on first use, once, thread-safe."""

    dimension = DIMENSION

    def __init__(self, *, table: Path | None = None) -> None:
        """``table``: a table file to use (None: the cached one, made if missing)."""
        self._table_file = table
        self._table: np.ndarray[Any, np.dtype[np.float32]] | None = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """What a stored vector is keyed by."""
        return MODEL_ID

    @property
    def loaded(self) -> bool:
        return self._table is not None

    def load(self) -> None:
        """Load (or first distil) the table now."""
        self._load()

    def _load(self) -> tuple[np.ndarray[Any, np.dtype[np.float32]], Any]:
        with self._lock:
            if self._table is None:
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(tokenizer_path()))
                tokenizer.no_padding()
                tokenizer.enable_truncation(max_length=MAX_TOKENS)
                self._tokenizer = tokenizer
                self._table = np.load(self._table_file) if self._table_file else load_table()
            return self._table, self._tokenizer

    def embed(self, texts: Sequence[str]) -> Vectors:
        """An ``(len(texts), DIMENSION)`` float32 array of unit vectors, in input order."""
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        table, tokenizer = self._load()
        # A chunk at a time: the gathered rows of every word piece are 1 KB each.
        for start in range(0, len(texts), _EMBED_CHUNK):
            chunk = list(texts[start : start + _EMBED_CHUNK])
            pieces = [e.ids for e in tokenizer.encode_batch(chunk, add_special_tokens=False)]
            lengths = np.fromiter(map(len, pieces), np.int64, len(chunk))
            filled = np.flatnonzero(lengths)
            if len(filled):
                ids = np.fromiter(chain.from_iterable(pieces), np.int64, int(lengths.sum()))
                starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))[filled]
                out[start + filled] = np.add.reduceat(table[ids], starts, axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.maximum(norms, 1e-12)
        return out

    async def aembed(self, texts: Sequence[str]) -> Vectors:
        """`embed` in a worker thread, for callers on an event loop."""
        return await asyncio.to_thread(self.embed, texts)


_shared: StaticEmbedder | None = None
_shared_lock = threading.Lock()


def shared_static_embedder() -> StaticEmbedder:
    """The process's one `StaticEmbedder`: every caller shares its table."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = StaticEmbedder()
        return _shared
