"""The ``x-ratelimit-*`` headers of a gateway answer: the budget of the deployment that
served it, as datamill knows it (configured, announced in the provider's headers, or learned
from its 429s; `scheduler/rate.py`), in OpenAI's names and formats.

OpenAI counts a per-minute window; datamill paces with a token bucket that refills at the
admitted rate and holds half a second of burst (`scheduler/gate.py`). The headers translate
one into the other: ``limit`` is the admitted rate per minute, ``remaining`` is that minus
what the bucket is short of full (and, for requests, the calls waiting their turn), and
``reset`` is how long the bucket takes to fill again. While a provider's ``Retry-After``
pause holds, no request remains and the reset is the end of the pause. A budget datamill does
not know (nothing configured, announced or learned) has no headers: datamill does not limit
that deployment either.
"""

from __future__ import annotations

import math

from datamill.scheduler.gate import DeploymentGate
from datamill.scheduler.limits import TokenBucket


def ratelimit_headers(gate: DeploymentGate, now: float) -> dict[str, str]:
    """The headers describing ``gate``'s budget at ``now`` (its clock's ``monotonic()``)."""
    headers: dict[str, str] = {}
    pacer = gate.pacer
    paused_for = max(0.0, pacer.paused_until - now)
    if pacer.requests is not None:
        limit, remaining, reset = _window(pacer.requests, now, waiting=pacer.waiting)
        if paused_for > 0:
            remaining, reset = 0, max(reset, paused_for)
        headers |= _headers("requests", limit, remaining, reset)
    if pacer.tokens is not None:
        headers |= _headers("tokens", *_window(pacer.tokens, now, waiting=0))
    return headers


def _window(bucket: TokenBucket, now: float, *, waiting: int) -> tuple[int, int, float]:
    """(limit per minute, remaining, seconds to a full bucket)."""
    limit = max(1, round(bucket.rate * 60))
    short = max(0.0, bucket.capacity - bucket.level(now)) + waiting
    remaining = max(0, math.floor(limit - short))
    return limit, remaining, short / bucket.rate


def _headers(kind: str, limit: int, remaining: int, reset: float) -> dict[str, str]:
    return {
        f"x-ratelimit-limit-{kind}": str(limit),
        f"x-ratelimit-remaining-{kind}": str(remaining),
        f"x-ratelimit-reset-{kind}": reset_duration(reset),
    }


def reset_duration(seconds: float) -> str:
    """OpenAI's reset format (Go's durations): ``20ms``, ``1s``, ``6m0s``, ``1h2m3s``."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms" if seconds > 0 else "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, rest = divmod(rest, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    return f"{int(minutes)}m{text}" if minutes else text
