"""When to try a failed call again."""

from __future__ import annotations

import random

from datamill.scheduler.gate import MAX_PAUSE

BASE_DELAY = 0.5
MAX_DELAY = 30.0


def backoff_delay(retry: int, *, retry_after: float | None, rng: random.Random) -> float:
    """Seconds before retry number ``retry`` (1 for the first retry).

    A server hint (``Retry-After``) is obeyed up to `MAX_PAUSE`, with a little jitter on top
    so a crowd of waiting calls does not return in the same millisecond; otherwise
    exponential backoff with full jitter, capped at `MAX_DELAY`.
    """
    if retry_after is not None and retry_after > 0:
        hint = min(retry_after, MAX_PAUSE)
        return hint + rng.uniform(0, min(1.0, hint * 0.1))
    ceiling = min(MAX_DELAY, BASE_DELAY * 2 ** (retry - 1))
    return rng.uniform(ceiling / 2, ceiling)
