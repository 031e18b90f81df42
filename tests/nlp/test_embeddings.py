"""all-MiniLM-L6-v2 on ONNX Runtime: the vectors' known properties, batching, loading once,
and loading with no network at all."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from datamill.nlp.embeddings import (
    DIMENSION,
    Embedder,
    model_path,
    pool_and_normalize,
    shared_embedder,
    tokenizer_path,
)

CAT = "A cat is sleeping on the warm windowsill."
CAT_PARAPHRASE = "On the warm window ledge, a cat is asleep."
UNRELATED = "The quarterly report shows revenue grew by eight percent."
LONG = " ".join(["The parties agree that this clause survives termination."] * 60)


def test_vectors_are_unit_length_float32_rows_in_input_order(embedder: Embedder):
    vectors = embedder.embed([CAT, UNRELATED, CAT_PARAPHRASE])

    assert vectors.shape == (3, DIMENSION)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Input order: the rows match each text embedded alone.
    alone = np.vstack([embedder.embed([text]) for text in (CAT, UNRELATED, CAT_PARAPHRASE)])
    np.testing.assert_allclose(vectors, alone, atol=1e-5)


def test_identical_texts_have_identical_vectors(embedder: Embedder):
    first, second = embedder.embed([CAT, CAT])

    assert np.array_equal(first, second)


def test_a_paraphrase_is_closer_than_an_unrelated_sentence(embedder: Embedder):
    cat, paraphrase, unrelated = embedder.embed([CAT, CAT_PARAPHRASE, UNRELATED])

    assert cat @ paraphrase > 0.7
    assert cat @ unrelated < 0.3
    assert cat @ paraphrase > cat @ unrelated + 0.4


def test_padding_does_not_change_a_vector(embedder: Embedder):
    """A short text batched with a 600-token one is padded to 256 tokens; masked pooling
    must give the vector it has alone. (The quantised model's activations are scaled per
    batch, so it is the shipped one's property; the quantised one runs a text alone.)"""
    small = Embedder(threads=1, batch_size=8, quantize=False)
    alone = small.embed([CAT])[0]
    padded = small.embed([LONG, CAT])[1]

    np.testing.assert_allclose(alone, padded, atol=1e-5)


def test_long_inputs_are_truncated_to_max_tokens(embedder: Embedder):
    encoded = embedder._load().tokenizer.encode(LONG)  # the embedder's own tokenizer

    assert len(encoded.ids) == embedder.max_tokens == 256
    # Past the cap, more text changes nothing.
    longer, long = embedder.embed([LONG + " And a tail that is cut off.", LONG])
    np.testing.assert_allclose(longer, long, atol=1e-6)


def test_pooling_is_the_masked_mean_then_unit_length():
    hidden = np.array([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]])

    [vector] = pool_and_normalize(hidden, mask)

    np.testing.assert_allclose(vector, np.array([2.0, 2.0]) / np.sqrt(8.0), atol=1e-6)


def test_no_texts_give_an_empty_array(embedder: Embedder):
    assert embedder.embed([]).shape == (0, DIMENSION)


def test_the_model_loads_lazily_and_once_across_threads():
    opened: list[int] = []

    class Counting(Embedder):
        def _open(self):  # type: ignore[no-untyped-def]
            opened.append(1)
            time.sleep(0.05)  # widen the window in which racing threads could both load
            return super()._open()

    model = Counting(threads=1)
    assert not model.loaded
    threads = [threading.Thread(target=model.embed, args=([CAT],)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert model.loaded
    assert opened == [1]


def test_shared_embedder_is_one_per_thread_setting():
    assert shared_embedder(threads=1) is shared_embedder(threads=1)
    assert shared_embedder(threads=1) is not shared_embedder(threads=2)
    assert not shared_embedder(threads=1).loaded  # asking for it loads nothing


async def test_aembed_runs_off_the_event_loop(embedder: Embedder):
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    vectors = await embedder.aembed([LONG] * 3)
    task.cancel()

    np.testing.assert_allclose(vectors, embedder.embed([LONG] * 3), atol=1e-6)
    assert ticks >= 2  # the loop kept running while the batch was embedded


def test_the_model_and_tokenizer_ship_in_packages():
    assert tokenizer_path().is_file()
    assert tokenizer_path().stat().st_size == 466_247
    assert model_path().is_file()


# Runs in a fresh interpreter, so that imports too happen with the network refused.
_OFFLINE_SCRIPT = textwrap.dedent(
    """
    import ipaddress, socket

    def _loopback(host):
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return host == "localhost"

    _connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo
    refused = []

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            refused.append(address)
            raise OSError("network refused by the test: " + repr(address))
        return _connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _loopback(host):
            refused.append(host)
            raise OSError("name lookup refused by the test: " + repr(host))
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo

    # The guard works: a connection to a public address is refused.
    probe = socket.socket()
    try:
        probe.connect(("93.184.216.34", 80))
        raise SystemExit("the guard let a connection through")
    except OSError:
        pass
    finally:
        probe.close()
    refused.clear()

    from datamill.nlp.embeddings import Embedder
    vectors = Embedder(threads=1).embed(["offline", "still offline"])
    assert vectors.shape == (2, 384), vectors.shape
    print("refused", len(refused))
    """
)


def test_the_model_loads_and_runs_with_no_network(tmp_path: Path):
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("HF_", "HUGGINGFACE", "TRANSFORMERS_", "SENTENCE_TRANSFORMERS"))
    }
    # An empty home and cache: nothing can come from a hub cache either.
    env.update(HF_HUB_OFFLINE="1", HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))

    done = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "refused 0"


@pytest.mark.parametrize("bad", [{"threads": 0}, {"max_tokens": 1}, {"batch_size": 0}])
def test_bad_options_are_refused(bad: dict[str, int]):
    with pytest.raises(ValueError, match="at least"):
        Embedder(**bad)
