"""Peer ``litellm_router``: a published tool, LiteLLM's ``Router``, from PyPI in its own venv.

Settings (record any change here and in bench/peers/README.md):

- litellm 1.110.2 with the pins in bench/peers/requirements-litellm.txt, installed into
  bench/.venvs/litellm by bench/peers/setup.sh (``make peers``).
- Offline: ``LITELLM_LOCAL_MODEL_COST_MAP=True`` and ``LITELLM_OFFLINE_MODE=true`` (the bundled
  cost map and tokenizers, no fetch at import), ``HF_HUB_OFFLINE=1`` (belt and braces),
  all set below before ``litellm`` is imported.
- One deployment ``{"model_name": "bench", "litellm_params": {"model": "openai/<model of the
  first input line>", "api_base": --base-url, "api_key": "bench"}}``, routing strategy
  ``simple-shuffle`` (the default).
- Retries: the Router's own, ``num_retries`` 2 by default (``--max-retries N`` sets it), with
  its default backoff; LiteLLM does not stack the openai client's retries on top (checked: a
  mock forced to answer 500, or 429, saw 3 calls per request).
  Timeouts: LiteLLM's defaults (``timeout=None`` on the Router, so ``litellm.request_timeout``,
  6000 s). Cooldowns, fallbacks, caching, callbacks: the defaults (none configured).
- ``--rpm R``: ``"rpm": R`` on the deployment, enforced by the Router's
  ``optional_pre_call_checks=["enforce_model_rate_limits"]``, LiteLLM's hard per-deployment
  limit. It counts requests per calendar minute (``%H-%M``) and fails a call over the count
  with a RateLimitError, which the Router's retries then handle; it does not pace, so a run
  that fits in one minute's count is sent as fast as LiteLLM goes. Without the check LiteLLM
  reads ``rpm`` only as a routing weight.
- ``asyncio`` (the default loop), an ``asyncio.Semaphore(C)`` around ``router.acompletion``,
  one task per request, each result appended as it arrives (``response.model_dump()``).

    bench/.venvs/litellm/bin/python bench/peers/litellm_router.py --base-url URL
        --input in.jsonl --output out.jsonl --concurrency C [--rpm R] [--max-retries N]
"""

from __future__ import annotations

import os

# Before litellm is imported: it reads these at import time.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["LITELLM_OFFLINE_MODE"] = "true"
os.environ["HF_HUB_OFFLINE"] = "1"

import asyncio
import time
from typing import Any

from litellm.router import Router
from peer_cli import PeerArgs, Results, first_model, parse_args, print_summary, read_requests

PEER = "litellm_router"
MODEL_GROUP = "bench"


def make_router(args: PeerArgs) -> Router:
    params: dict[str, Any] = {
        "model": f"openai/{first_model(args.input)}",
        "api_base": args.base_url,
        "api_key": "bench",
    }
    options: dict[str, Any] = {}
    if args.rpm is not None:
        params["rpm"] = args.rpm
        options["optional_pre_call_checks"] = ["enforce_model_rate_limits"]
    if args.max_retries is not None:
        options["num_retries"] = args.max_retries
    deployment = {"model_name": MODEL_GROUP, "litellm_params": params}
    router: Router = Router(model_list=[deployment], **options)
    return router


async def run(args: PeerArgs, results: Results) -> None:
    router = make_router(args)
    semaphore = asyncio.Semaphore(args.concurrency)

    async def complete(custom_id: str, body: dict[str, Any]) -> None:
        request = {key: value for key, value in body.items() if key != "model"}
        async with semaphore:
            try:
                response = await router.acompletion(model=MODEL_GROUP, **request)
            except Exception as exc:  # LiteLLM maps provider errors to its own exception types
                results.record(custom_id, None, f"{type(exc).__name__}: {exc}")
            else:
                results.record(custom_id, response.model_dump(), None)

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
