"""The Label Studio round trip at scale: tasks exported, annotations imported back.

    .venv/bin/python bench/label_studio.py [--samples 100000] [--annotated 10000]

Builds a SQLite dataset of question/answer samples (as bench/exports.py does), times the
``label-studio`` export of all of them through `LabelStudioService.export` and through
``datamill dataset export --format label-studio`` (start-up and the config included), then
writes Label Studio's JSON export for the first ``--annotated`` tasks (one approving
annotation each, with a rating) and times its import three times: the first writes a review
per task, the next two write nothing. Prints ``label-studio export ...`` and one
``label-studio import ...`` line per import.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson

from bench.exports import CLI, build
from datamill.curation.lookups import SampleQuery
from datamill.labelstudio.service import label_studio_service
from datamill.runtime import Runtime
from datamill.settings import load_settings


async def export(env: dict[str, str], dataset_id: str, out: Path) -> float:
    runtime = await Runtime.open(load_settings(env))
    try:
        start = time.perf_counter()
        service = label_studio_service(runtime)
        _, stream = await service.export(dataset_id, SampleQuery())
        with out.open("wb") as handle:
            async for chunk in stream:
                handle.write(chunk)
        return time.perf_counter() - start
    finally:
        await runtime.close()


def annotated(tasks: list[dict[str, object]]) -> bytes:
    out = []
    for number, made in enumerate(tasks):
        result = [
            {"from_name": "decision", "to_name": "f_question", "type": "choices",
             "value": {"choices": ["approve"]}},
            {"from_name": "rating", "to_name": "f_question", "type": "rating",
             "value": {"rating": number % 5 + 1}},
        ]  # fmt: skip
        annotation = {
            "id": number,
            "completed_by": {"id": 1, "email": "ann@example.com"},
            "result": result,
            "was_cancelled": False,
            "ground_truth": False,
            "updated_at": "2026-12-01T10:00:00Z",
        }
        out.append({"id": number, "data": made["data"], "annotations": [annotation]})
    return orjson.dumps(out)


async def import_once(env: dict[str, str], dataset_id: str, body: bytes) -> tuple[float, str]:
    async def chunks() -> AsyncIterator[bytes]:
        yield body

    runtime = await Runtime.open(load_settings(env))
    try:
        start = time.perf_counter()
        service = label_studio_service(runtime)
        report = await service.import_annotations(dataset_id, chunks())
        took = time.perf_counter() - start
        return took, f"applied={report.applied} unchanged={report.unchanged} errors={report.errors}"
    finally:
        await runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--annotated", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "DATAMILL_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "DATAMILL_MAX_FILE_BYTES": str(1 << 30),
        }
        dataset_id = asyncio.run(build(env, args.samples))
        out = Path(tmp) / "tasks.json"
        service_s = asyncio.run(export(env, dataset_id, out))
        start = time.perf_counter()
        command = [sys.executable, "-c", CLI, "dataset", "export", "bench"]
        command += ["--format", "label-studio", "-o", str(Path(tmp) / "cli.json")]
        subprocess.run(command, env={**os.environ, **env}, check=True, capture_output=True)
        cli_s = time.perf_counter() - start
        print(
            f"label-studio export samples={args.samples} service_s={service_s:.2f} "
            f"cli_s={cli_s:.2f} bytes={out.stat().st_size}",
            flush=True,
        )
        tasks = orjson.loads(out.read_bytes())[: args.annotated]
        body = annotated(tasks)
        for attempt in range(1, 4):
            took, said = asyncio.run(import_once(env, dataset_id, body))
            print(
                f"label-studio import attempt={attempt} tasks={len(tasks)} s={took:.2f} {said}",
                flush=True,
            )


if __name__ == "__main__":
    main()
