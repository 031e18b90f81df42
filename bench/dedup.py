"""Dedup cost: 100,000 synthetic samples deduplicated as a dataset is (`curation.dedup`),
with planted near-duplicates to score.

    .venv/bin/python bench/dedup.py [--samples 100000] [--batch 1024] [--threads 2]
        [--embed-batch N] [--planted-share 0.1] [--dtype float16] [--vectors PATH]
        [--search cascade|transformer]

The samples (`bench/dedup_samples.py`, generated in the process, no downloads) go through
two phases, as `POST /api/datasets/{id}/dedup` runs them: **embed** (the model, on every
sample: what a dataset without stored vectors costs once) and **search** (the index decides
each sample, ``--batch`` at a time, with the vectors given: exact, lexical, the neighbour
search and the content-token check). ``--search cascade`` (the default, as datamill runs
it) embeds every sample with the static table and asks the transformer only about the pairs
that table finds (its seconds are reported as ``confirm_s``, inside ``search_s``);
``--search transformer`` embeds every sample with the transformer. ``--vectors PATH``
keeps the searched vectors in a .npy file and reads them back on the next run (the
stored-vectors case). About a tenth of
the samples are planted copies of an earlier sample, half near-verbatim and half
paraphrases. Prints one line: embed, search and total seconds, samples/s, search rate by
tenth (it grows with the kept samples), peak RSS and the index's bytes per kept sample,
precision and recall on the planted copies (overall and by kind), and the decisions by kind.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from datamill.nlp.dedup import NearDuplicateIndex
from datamill.nlp.embeddings import Embedder, Vectors
from datamill.nlp.static_embeddings import StaticEmbedder
from dedup_samples import Sample, generate
from harness import line, own_peak_rss_mb


class TimedEmbedder(Embedder):
    """The embedder, timing its calls and counting the texts it embeds."""

    seconds = 0.0
    texts = 0

    def embed(self, texts: Sequence[str]) -> Vectors:
        started = time.perf_counter()
        try:
            return super().embed(texts)
        finally:
            self.seconds += time.perf_counter() - started
            self.texts += len(texts)


def rss_mb() -> float:
    for entry in Path("/proc/self/status").read_text().splitlines():
        if entry.startswith("VmRSS:"):
            return int(entry.split()[1]) / 1024
    return 0.0


def index_bytes(index: NearDuplicateIndex) -> int:
    """What the index holds: its arrays, the keys and the exact-hash table."""
    keys = index._keys
    table = index._exact
    python = sys.getsizeof(keys) + sum(sys.getsizeof(k) for k in keys)
    python += sys.getsizeof(table) + sum(sys.getsizeof(h) + 4 for h in table)  # int values
    return index.nbytes + python


def rates_by_tenth(checkpoints: list[tuple[int, float]]) -> list[float]:
    """Samples/s over each tenth of the run, cut at the first batch past each tenth."""
    total = checkpoints[-1][0]
    rates = []
    previous = checkpoints[0]
    for tenth in range(1, 11):
        point = next(c for c in checkpoints if c[0] >= total * tenth / 10)
        if point[0] > previous[0]:
            rates.append((point[0] - previous[0]) / (point[1] - previous[1]))
            previous = point
    return rates


def score(samples: list[Sample], flagged: list[bool]) -> dict[str, object]:
    planted = [s.planted != "" for s in samples]
    true_positives = sum(f and p for f, p in zip(flagged, planted, strict=True))
    figures: dict[str, object] = {
        "planted": sum(planted),
        "flagged": sum(flagged),
        "precision": true_positives / max(1, sum(flagged)),
        "recall": true_positives / max(1, sum(planted)),
    }
    for kind in ("near-verbatim", "paraphrase"):
        of_kind = [f for f, s in zip(flagged, samples, strict=True) if s.planted == kind]
        figures[f"recall_{kind}"] = sum(of_kind) / max(1, len(of_kind))
    figures["originals_flagged"] = sum(flagged) - true_positives
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--embed-batch", type=int, default=None, help="default: the model's")
    parser.add_argument("--planted-share", type=float, default=0.1)
    parser.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    parser.add_argument("--vectors", type=Path, default=None)
    parser.add_argument("--search", choices=["cascade", "transformer"], default="cascade")
    args = parser.parse_args()

    started = time.perf_counter()
    samples = generate(args.samples, planted_share=args.planted_share)
    texts = [s.text for s in samples]
    generate_s = time.perf_counter() - started
    transformer = TimedEmbedder(threads=args.threads, batch_size=args.embed_batch)
    transformer.load()
    cascade = args.search == "cascade"
    embedder: Embedder | StaticEmbedder = StaticEmbedder() if cascade else transformer
    embedder.load()

    started = time.perf_counter()
    if args.vectors is not None and args.vectors.exists():
        vectors = np.load(args.vectors)
        assert len(vectors) == len(texts), "the cached vectors are for another --samples"
        embed_s = 0.0
    else:
        vectors = embedder.embed(texts).astype(np.float16).astype(np.float32)
        embed_s = time.perf_counter() - started
        if args.vectors is not None:
            np.save(args.vectors, vectors)
    index = NearDuplicateIndex(
        embedder, confirm=transformer if cascade else None, vector_dtype=args.dtype
    )
    rss_before = rss_mb()

    flagged: list[bool] = []
    kinds: Counter[str] = Counter()
    started = time.perf_counter()
    checkpoints = [(0, started)]  # (samples decided, when), after each batch
    for start in range(0, len(samples), args.batch):
        stop = start + args.batch
        keys = [str(n) for n in range(start, min(stop, len(samples)))]
        decided = index.check_and_add_many(texts[start:stop], keys, vectors=vectors[start:stop])
        for match in decided:
            flagged.append(match is not None)
            kinds[match.kind.value if match else "kept"] += 1
        checkpoints.append((len(flagged), time.perf_counter()))
    search_s = time.perf_counter() - started
    rss_after = rss_mb()

    print(
        line(
            "dedup",
            samples=args.samples,
            batch=args.batch,
            threads=args.threads,
            model=embedder.name,
            confirm=transformer.name if cascade else None,
            embed_batch=transformer.batch_size,
            dtype=args.dtype,
            vectors="read back" if embed_s == 0.0 else "embedded",
            generate_s=generate_s,
            embed_s=embed_s,
            embed_per_s=args.samples / embed_s if embed_s else 0.0,
            search_s=search_s,
            confirm_s=transformer.seconds if cascade else 0.0,
            confirmed_texts=transformer.texts if cascade else 0,
            total_s=embed_s + search_s,
            samples_per_s=args.samples / (embed_s + search_s),
            search_rate_by_tenth="/".join(f"{r:.0f}" for r in rates_by_tenth(checkpoints)),
            kept=len(index),
            peak_rss_mb=own_peak_rss_mb(),
            index_growth_mb=rss_after - rss_before,
            index_bytes_per_kept=index_bytes(index) / max(1, len(index)),
            **score(samples, flagged),
            **{f"by_{kind}": count for kind, count in sorted(kinds.items())},
        )
    )


if __name__ == "__main__":
    main()
