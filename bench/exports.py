"""Dataset exports: every format of 100,000 samples, through the service and the CLI.

    .venv/bin/python bench/exports.py [--samples 100000] [--no-cli] [--split train=0.8,test=0.2]

Builds a SQLite dataset of question/answer samples (about 600 characters each, with a
generation prompt in their provenance) by an import, then times each format's export:
through `DatasetService.export` (the stream drained into a file) and through
`datamill dataset export` in a subprocess (start-up included; with ``--split``, one file
per split into a directory). Prints one line per format:
``exports format=F samples=N service_s=... cli_s=... bytes=...``; the target is 10 s each.
Then ``exports check``: the `openai-chat` export with every example's tokens counted (what
`GET /api/datasets/{id}/export/check` does).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson

from datamill.curation.exports import ExportOptions
from datamill.curation.lookups import SampleQuery
from datamill.labelstudio.service import label_studio_service
from datamill.protocol.datasets import DatasetCreate, ExportFormat
from datamill.runtime import Runtime
from datamill.settings import load_settings

CLI = "import sys; from datamill.cli.main import main; sys.argv[0] = 'datamill'; main()"
WORDS = [
    "prime",
    "number",
    "sum",
    "product",
    "river",
    "mountain",
    "policy",
    "market",
    "theorem",
    "proof",
    "model",
    "data",
    "engine",
    "history",
    "language",
    "music",
    "garden",
    "planet",
    "energy",
    "protein",
    "signal",
    "contract",
    "network",
    "kernel",
]


def samples(count: int) -> bytes:
    rng = random.Random(7)
    lines = []
    for n in range(count):
        question = " ".join(rng.choices(WORDS, k=12)) + f" (case {n})?"
        answer = " ".join(rng.choices(WORDS, k=80)) + "."
        line = {
            "content": {"question": question, "answer": answer, "difficulty": rng.randint(1, 5)},
            "topic": rng.choice(("math", "science", "law")),
            "sample_type": "qa",
            "model": "gpt-4o-mini",
            "metadata": {"n": n},
            "provenance": {"source": "generation", "prompt": f"Write a question about {n}"},
        }
        lines.append(orjson.dumps(line))
    return b"\n".join(lines) + b"\n"


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1 << 20):
        yield data[start : start + (1 << 20)]


async def build(env: dict[str, str], count: int) -> str:
    runtime = await Runtime.open(load_settings(env))
    try:
        view = await runtime.datasets.create(DatasetCreate(name="bench"))
        start = time.perf_counter()
        report = await runtime.datasets.import_jsonl(view.record.id, chunks(samples(count)))
        print(f"import samples={report.imported} s={time.perf_counter() - start:.1f}", flush=True)
        return view.record.id
    finally:
        await runtime.close()


async def export_once(
    env: dict[str, str], dataset_id: str, fmt: ExportFormat, out: Path, *, check: bool = False
) -> float:
    runtime = await Runtime.open(load_settings(env))
    try:
        start = time.perf_counter()
        options = ExportOptions(count_tokens=check)  # `export/check` counts every example
        if fmt is ExportFormat.label_studio:  # the tasks are written by their own service
            service = label_studio_service(runtime)
            _, stream = await service.export(dataset_id, SampleQuery(), options=options)
        else:
            _, stream = await runtime.datasets.export(
                dataset_id, SampleQuery(), fmt, options=options
            )
        with out.open("wb") as handle:
            async for chunk in stream:
                handle.write(chunk)
        return time.perf_counter() - start
    finally:
        await runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--no-cli", action="store_true")
    parser.add_argument("--split", help="the CLI exports these splits: train=0.8,test=0.2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "DATAMILL_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "DATAMILL_MAX_FILE_BYTES": str(1 << 30),
        }
        dataset_id = asyncio.run(build(env, args.samples))
        for fmt in ExportFormat:
            out = Path(tmp) / f"out.{fmt.value}"
            service_s = asyncio.run(export_once(env, dataset_id, fmt, out))
            size = out.stat().st_size
            cli = ""
            if not args.no_cli:
                start = time.perf_counter()
                target = (
                    [str(out)]
                    if args.split is None
                    else [f"{tmp}/{fmt.value}/", "--split", args.split]
                )
                command = [sys.executable, "-c", CLI, "dataset", "export", "bench"]
                command += ["--format", fmt.value, "-o", *target]
                subprocess.run(command, env={**os.environ, **env}, check=True, capture_output=True)
                cli = f" cli_s={time.perf_counter() - start:.2f}"
            print(
                f"exports format={fmt.value} samples={args.samples} service_s={service_s:.2f}"
                f"{cli} bytes={size}",
                flush=True,
            )
        check_s = asyncio.run(
            export_once(env, dataset_id, ExportFormat.openai_chat, Path(tmp) / "x", check=True)
        )
        print(f"exports check samples={args.samples} service_s={check_s:.2f}", flush=True)


if __name__ == "__main__":
    main()
