"""Generation throughput: examples/legal-cases.yaml on the `sim` provider, in one process,
as `datamill generate` runs it (a worker of its own and the job's runner).

    .venv/bin/python bench/generation.py [--per-cell N] [--store sqlite|postgresql]
        [--latency-ms 0] [--concurrency 256] [--no-near]

By default the example's full target (7,600 samples, 168 cells). `sim` answers at once
(``--latency-ms`` adds a simulated latency), so this measures datamill: batches, parsing,
filtering, near-duplicate checks (all-MiniLM-L6-v2 on ONNX Runtime) and the quota
transactions. Prints one line: accepted samples/s, wall time, requests, answers per
accepted sample, the share of time in the embedding model, rejections by reason, whether
every cell is at its target exactly, and peak RSS. ``--no-near`` turns near-duplicate
removal off: the loop's own cost, without the model.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from datamill.engine.worker import WorkerOptions
from datamill.nlp.embeddings import Vectors, shared_embedder
from datamill.runtime import Runtime
from datamill.settings import load_settings
from harness import ROOT, line, machine, own_peak_rss_mb, store

EXAMPLE = ROOT / "examples" / "legal-cases.yaml"


def spec_data(per_cell: int | None, near: bool) -> dict[str, object]:
    spec = yaml.safe_load(EXAMPLE.read_text())
    if per_cell is not None:
        spec["target"] = {"per_cell": per_cell}
    spec["budget"] = {}
    spec["dedup"]["near"] = near
    return spec


def time_the_model() -> dict[str, float]:
    """Count the seconds the shared embedder spends (the job's index uses it)."""
    embedder = shared_embedder()
    spent = {"seconds": 0.0, "texts": 0.0}
    original = embedder.embed

    def timed(texts: Sequence[str]) -> Vectors:
        started = time.perf_counter()
        try:
            return original(texts)
        finally:
            spent["seconds"] += time.perf_counter() - started
            spent["texts"] += len(texts)

    embedder.embed = timed  # type: ignore[method-assign]
    return spent


async def run(args: argparse.Namespace, url: str, home: Path) -> str:
    config = home / "datamill.toml"
    options = f"options = {{ latency_ms = {args.latency_ms} }}\n" if args.latency_ms else ""
    config.write_text(
        '[[deployments]]\nname = "sim"\nprovider = "sim"\n'
        'model = "llama-3.3-70b-versatile"\n' + options
    )
    settings = load_settings(
        {
            "DATAMILL_HOME": str(home),
            "DATAMILL_DATABASE_URL": url,
            "DATAMILL_CONFIG": str(config),
            "DATAMILL_CONCURRENCY": str(args.concurrency),
        }
    )
    spent = time_the_model()
    runtime = await Runtime.open(settings)
    try:
        worker = runtime.new_worker(
            WorkerOptions(
                kind="run", concurrency=args.concurrency, idle_poll=0.1, sweep_interval=0.25
            )
        )
        worker_task = asyncio.create_task(worker.run())
        started = time.perf_counter()
        job = await runtime.generation.create(spec_data(args.per_cell, args.near))
        outcome = await runtime.generation.run_job(job.id, runner_id=worker.id)
        wall = time.perf_counter() - started
        worker.stop()
        await worker_task
        view = await runtime.generation.get(job.id)
    finally:
        await runtime.close()
    cells = view.cells
    reasons: dict[str, int] = {}
    for cell in cells:
        for reason, count in cell.rejections.items():
            reasons[reason] = reasons.get(reason, 0) + count
    accepted = sum(c.accepted for c in cells)
    answers = accepted + sum(reasons.values()) + sum(c.surplus for c in cells)
    return line(
        "generation",
        store=args.store,
        near=args.near,
        outcome=outcome,
        cells=len(cells),
        target=sum(c.target for c in cells),
        accepted=accepted,
        exact_targets=all(c.accepted == c.target for c in cells),
        wall_s=wall,
        accepted_per_s=accepted / wall,
        requests=view.job.requests,
        answers_per_sample=answers / max(1, accepted),
        model_s=spent["seconds"],
        model_share=spent["seconds"] / wall,
        embedded=int(spent["texts"]),
        rejected="/".join(f"{k}:{v}" for k, v in sorted(reasons.items())) or "none",
        surplus=sum(c.surplus for c in cells),
        peak_rss_mb=own_peak_rss_mb(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-cell", type=int, default=None, help="default: the example's 7,600")
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument(
        "--no-near", dest="near", action="store_false", help="exact duplicates only (no model)"
    )
    args = parser.parse_args()
    print(f"# {machine()}", flush=True)
    with store(args.store) as (url, home):
        print(asyncio.run(run(args, url, home)), flush=True)


if __name__ == "__main__":
    main()
