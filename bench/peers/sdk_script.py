"""Peer ``sdk_script``: the plain script users write with the official ``openai`` SDK.

``asyncio`` (the default event loop), one ``AsyncOpenAI(base_url=..., api_key=...,
max_retries=...)`` with the SDK's defaults otherwise (timeout 600 s, its own connection pool,
retries with exponential backoff that honour ``Retry-After``), an ``asyncio.Semaphore(C)``,
one task per request, ``chat.completions.create(**body)``, and each result appended to the
output file as it arrives (``json.dumps(response.model_dump())``). ``--max-retries`` defaults
to the SDK's own (2). ``--rpm R`` adds what a careful user writes: request starts paced
60/R seconds apart inside the semaphore. The SDK's own retries bypass that pacing, as they
would in such a script.

    .venv/bin/python bench/peers/sdk_script.py --base-url URL --input in.jsonl
        --output out.jsonl --concurrency C [--rpm R] [--max-retries N]
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import openai
from peer_cli import PeerArgs, Results, parse_args, print_summary, read_requests

PEER = "sdk_script"


class Pacer:
    """Spaces request starts ``60 / rpm`` seconds apart: a start waits for the next free slot."""

    def __init__(self, rpm: int) -> None:
        self.interval = 60 / rpm
        self.next_slot = time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(self.next_slot, now)
        self.next_slot = slot + self.interval  # taken before the await: no two starts share it
        if slot > now:
            await asyncio.sleep(slot - now)


def make_client(args: PeerArgs) -> openai.AsyncOpenAI:
    if args.max_retries is None:  # the SDK's own default
        return openai.AsyncOpenAI(base_url=args.base_url, api_key="bench")
    return openai.AsyncOpenAI(base_url=args.base_url, api_key="bench", max_retries=args.max_retries)


async def run(args: PeerArgs, results: Results) -> None:
    client = make_client(args)
    semaphore = asyncio.Semaphore(args.concurrency)
    pacer = Pacer(args.rpm) if args.rpm else None

    async def complete(custom_id: str, body: dict[str, Any]) -> None:
        async with semaphore:
            if pacer is not None:
                await pacer.wait()
            try:
                response = await client.chat.completions.create(**body)
            except openai.OpenAIError as exc:
                results.record(custom_id, None, f"{type(exc).__name__}: {exc}")
            else:
                results.record(custom_id, response.model_dump(), None)

    async with client:
        await asyncio.gather(*(complete(cid, body) for cid, body in read_requests(args.input)))


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    started = time.perf_counter()
    with args.output.open("w", encoding="utf-8") as handle:
        results = Results(handle)
        asyncio.run(run(args, results))
    print_summary(PEER, ok=results.ok, failed=results.failed, wall_s=time.perf_counter() - started)


if __name__ == "__main__":
    main()
