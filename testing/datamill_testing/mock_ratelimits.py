"""The mock provider's rate-limit headers, one convention per real provider.

Every convention is served by the same token bucket (``rpm`` with ``burst_seconds`` of
burst); only what the answers say about it differs, as each provider documents it:

- ``openai``: ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``, the reset the time
  until the bucket is full again (``20ms``, ``1s``, ``6m0s``, ``0s``);
- ``openai-live``: the same names, the reset always ``0s`` and the remaining count the live
  level of the bucket (often 0): a minute's limit announced, a second's bucket enforced;
- ``azure``: ``x-ratelimit-remaining-{requests,tokens}`` alone, no limit, no reset;
- ``groq``: OpenAI's names, but the requests figures per *day* (a reset in minutes) and the
  tokens per minute; the per-minute request limit it enforces is never announced;
- ``cerebras``: the window in the name, ``x-ratelimit-*-requests-day`` and
  ``x-ratelimit-*-tokens-minute``, resets in seconds;
- ``anthropic``: ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-*``,
  resets as RFC 3339 times, separate input and output token limits;
- ``openrouter``: ``X-RateLimit-{Limit,Remaining,Reset}`` over a 10-second window, the
  reset in epoch milliseconds;
- ``together``: ``x-ratelimit-{limit,remaining,reset}`` per second and
  ``x-tokenlimit-{limit,remaining}``;
- ``vllm``: no headers and no 429: past the limit a call waits in the server's queue.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Literal, Protocol, get_args

Convention = Literal[
    "openai",
    "openai-live",
    "azure",
    "groq",
    "cerebras",
    "anthropic",
    "openrouter",
    "together",
    "vllm",
]
CONVENTIONS: tuple[Convention, ...] = get_args(Convention)


class Level(Protocol):
    """A token bucket's state, as `mock_provider.Bucket` keeps it."""

    rate: float  # per second
    capacity: float
    level: float

    def reset_after(self) -> float: ...


def reset_duration(seconds: float) -> str:
    """OpenAI's reset format: ``"20ms"``, ``"1s"``, ``"6m0s"``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


def _rfc3339(seconds_from_now: float) -> str:
    return datetime.fromtimestamp(time.time() + seconds_from_now, UTC).isoformat()


def ratelimit_headers(
    convention: Convention,
    requests: Level,
    tokens: Level,
    *,
    rpm: int,
    tpm: int,
    used_today: int,
) -> dict[str, str]:
    """The headers one answer carries under ``convention``; ``used_today`` counts the calls
    the bucket admitted so far (the daily figures)."""
    remaining = str(max(0, int(requests.level)))
    tokens_left = str(max(0, int(tokens.level)))
    if convention in ("openai", "openai-live"):
        live = convention == "openai-live"
        return {
            "x-ratelimit-limit-requests": str(rpm),
            "x-ratelimit-remaining-requests": remaining,
            "x-ratelimit-reset-requests": "0s" if live else reset_duration(requests.reset_after()),
            "x-ratelimit-limit-tokens": str(tpm),
            "x-ratelimit-remaining-tokens": tokens_left,
            "x-ratelimit-reset-tokens": "0s" if live else reset_duration(tokens.reset_after()),
        }
    if convention == "azure":
        return {
            "x-ratelimit-remaining-requests": remaining,
            "x-ratelimit-remaining-tokens": tokens_left,
        }
    per_day = rpm * 1440
    day_left = max(0, per_day - used_today)
    # A daily budget comes back at a day's pace: what was used, at per_day a day.
    day_reset = used_today * 86400 / per_day
    if convention == "groq":
        return {
            "x-ratelimit-limit-requests": str(per_day),
            "x-ratelimit-remaining-requests": str(day_left),
            "x-ratelimit-reset-requests": reset_duration(day_reset),
            "x-ratelimit-limit-tokens": str(tpm),
            "x-ratelimit-remaining-tokens": tokens_left,
            "x-ratelimit-reset-tokens": reset_duration(tokens.reset_after()),
        }
    if convention == "cerebras":
        return {
            "x-ratelimit-limit-requests-day": str(per_day),
            "x-ratelimit-remaining-requests-day": str(day_left),
            "x-ratelimit-reset-requests-day": f"{day_reset:.3f}",
            "x-ratelimit-limit-tokens-minute": str(tpm),
            "x-ratelimit-remaining-tokens-minute": tokens_left,
            "x-ratelimit-reset-tokens-minute": f"{tokens.reset_after():.3f}",
        }
    if convention == "anthropic":
        prefix = "anthropic-ratelimit-"
        headers = {
            prefix + "requests-limit": str(rpm),
            prefix + "requests-remaining": remaining,
            prefix + "requests-reset": _rfc3339(requests.reset_after()),
        }
        # Input and output tokens have their own limits; ``tokens-*`` is the tighter one.
        for kind in ("input-tokens", "output-tokens", "tokens"):
            headers[f"{prefix}{kind}-limit"] = str(tpm)
            headers[f"{prefix}{kind}-remaining"] = tokens_left
            headers[f"{prefix}{kind}-reset"] = _rfc3339(tokens.reset_after())
        return headers
    if convention == "openrouter":
        return {
            "X-RateLimit-Limit": str(max(1, rpm // 6)),
            "X-RateLimit-Remaining": remaining,
            "X-RateLimit-Reset": str(int((time.time() + requests.reset_after()) * 1000)),
        }
    if convention == "together":
        return {
            "x-ratelimit-limit": str(max(1, rpm // 60)),
            "x-ratelimit-remaining": remaining,
            "x-ratelimit-reset": str(math.ceil(requests.reset_after())),
            "x-tokenlimit-limit": str(max(1, tpm // 60)),
            "x-tokenlimit-remaining": tokens_left,
        }
    return {}  # vllm
