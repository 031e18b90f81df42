"""The client side of the server benchmarks: one batch through `datamill serve` with the
official openai SDK (upload, create, poll, download the output and error files).

    python bench/server_client.py --base-url http://127.0.0.1:PORT/v1 --input in.jsonl \
        --output out.jsonl [--errors errors.jsonl] [--poll 0.2]

Prints one JSON line: ``{"status", "completed", "failed", "wall_s"}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from openai import OpenAI


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--errors", type=Path)
    parser.add_argument("--poll", type=float, default=0.2)
    args = parser.parse_args()

    start = time.perf_counter()
    client = OpenAI(base_url=args.base_url, api_key="bench", max_retries=5)
    with args.input.open("rb") as handle:
        upload = client.files.create(file=handle, purpose="batch")
    batch = client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    while batch.status not in {"completed", "failed", "expired", "cancelled"}:
        time.sleep(args.poll)
        batch = client.batches.retrieve(batch.id)
    if batch.output_file_id:
        client.files.content(batch.output_file_id).write_to_file(args.output)
    if batch.error_file_id and args.errors:
        client.files.content(batch.error_file_id).write_to_file(args.errors)
    counts = batch.request_counts
    print(
        json.dumps(
            {
                "status": batch.status,
                "completed": counts.completed if counts else 0,
                "failed": counts.failed if counts else 0,
                "wall_s": round(time.perf_counter() - start, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
