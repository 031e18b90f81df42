"""The locally quantised model: made once, reused, made again when corrupt, one build for
many threads; the shipped model when `onnx` is missing or the setting says no."""

from __future__ import annotations

import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from datamill.nlp import model_cache, quantized
from datamill.nlp.embeddings import MODEL_ID, QUANTIZED_MODEL_ID, Embedder, model_path

TEXTS = [
    "A cat is sleeping on the warm windowsill.",
    "The tenant may not sublet the flat without written consent.",
    "Refunds are possible within 30 days of purchase.",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One quantised model, made in a cache of its own."""
    pytest.importorskip("onnx")
    return quantized.quantized_model(model_path(), tmp_path_factory.mktemp("cache"))


def test_it_is_made_once_keyed_by_the_source_and_onnxruntime_then_reused(built: Path):
    import onnxruntime

    stamp = built.stat()
    assert built.name.startswith(f"minilm-l6-dq-{model_cache.digest(model_path())}-ort")
    assert built.name.endswith(f"-ort{onnxruntime.__version__}.onnx")
    sidecar = built.parent / (built.name + ".sha256")
    assert sidecar.read_text().strip() == model_cache.digest(built)

    again = quantized.quantized_model(model_path(), built.parent)

    assert again == built
    assert (again.stat().st_ino, again.stat().st_mtime_ns) == (stamp.st_ino, stamp.st_mtime_ns)
    assert not [p for p in built.parent.iterdir() if p.name.startswith(".quantize-")]


def test_a_corrupt_cache_file_is_made_again(built: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    shutil.copytree(built.parent, cache)
    copy = cache / built.name
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: still a parseable file, wrong weights
    copy.write_bytes(bytes(data))

    made = quantized.quantized_model(model_path(), cache)

    assert made == copy
    assert made.read_bytes() == built.read_bytes()
    copy.write_bytes(b"")  # truncated
    assert quantized.quantized_model(model_path(), cache).read_bytes() == built.read_bytes()


def test_threads_asking_at_once_build_it_once(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    builds: list[Path] = []
    real_build = quantized._build

    def counted(source: Path, target: Path) -> None:
        builds.append(target)
        real_build(source, target)

    monkeypatch.setattr(quantized, "_build", counted)
    results: list[Path] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(quantized.quantized_model(model_path(), tmp_path))
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(builds) == 1
    assert results == [tmp_path / built.name] * 4


def test_the_embedder_runs_the_quantised_copy_close_to_the_shipped_model(
    built: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(model_cache.ENV_CACHE, str(built.parent))
    monkeypatch.delenv(quantized.ENV_QUANTIZE, raising=False)
    fast, shipped = Embedder(threads=2), Embedder(threads=1, quantize=False)

    assert fast.quantized
    assert fast.name == f"{QUANTIZED_MODEL_ID}/256"
    assert fast.model_file() == built
    assert shipped.name == f"{MODEL_ID}/256"
    cosines = (fast.embed(TEXTS) * shipped.embed(TEXTS)).sum(axis=1)
    assert cosines.min() > 0.97
    # One text a run, two runs at once: a vector does not depend on its batch-mates.
    assert fast.batch_size == 1
    alone = np.vstack([fast.embed([text]) for text in TEXTS])
    assert np.array_equal(fast.embed(TEXTS * 3), np.vstack([alone] * 3))


def test_without_onnx_the_shipped_model_runs(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # find_spec answers None: not installed
    monkeypatch.delenv(quantized.ENV_QUANTIZE, raising=False)

    embedder = Embedder(threads=1)

    assert not quantized.available()
    assert not embedder.quantized
    assert embedder.name == f"{MODEL_ID}/256"
    assert embedder.model_file() == model_path()
    assert embedder.embed(TEXTS[:1]).shape == (1, 384)
    with pytest.raises(ModuleNotFoundError, match="onnx"):
        Embedder(quantize=True)


@pytest.mark.parametrize("value", ["0", "false", "off", "No"])
def test_the_setting_turns_it_off(monkeypatch: pytest.MonkeyPatch, value: str):
    monkeypatch.setenv(quantized.ENV_QUANTIZE, value)

    assert not quantized.enabled()
    assert not Embedder().quantized
    assert Embedder().batch_size == 32


def test_a_cache_that_cannot_be_written_runs_the_packaged_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    monkeypatch.setenv(model_cache.ENV_CACHE, str(blocked / "models"))

    assert not quantized.enabled()
    assert not Embedder().quantized
    assert "runs unquantised" in caplog.text


def test_the_cache_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    assert model_cache.cache_dir({model_cache.ENV_CACHE: str(tmp_path)}) == tmp_path
    assert model_cache.cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/datamill/models")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert model_cache.cache_dir({}) == tmp_path / ".cache" / "datamill" / "models"
