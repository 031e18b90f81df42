"""Providers' rate-limit headers, read into `RateLimitHints`, whatever their convention.

The figures are passed on as sent; what their window is (Groq sends requests per day under
OpenAI's per-minute name) is for the scheduler to judge (`datamill.scheduler.headers`).

- OpenAI, Groq: ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``, resets as
  durations (``1s``, ``6m0s``, ``20ms``, ``0s``).
- Azure OpenAI: ``x-ratelimit-remaining-{requests,tokens}`` alone, no limit (``-1`` where it
  has no figure).
- Cerebras: the window in the name, ``x-ratelimit-*-requests-day`` and
  ``x-ratelimit-*-tokens-minute``, resets in seconds. Its per-minute figures are what the
  hints carry; a daily cap says nothing about the pace a minute allows.
- Anthropic (its OpenAI-compatible endpoint too): ``anthropic-ratelimit-*``, resets as RFC
  3339 times; where only the input and output token figures are sent, the input ones stand
  for the tokens.
- OpenRouter, Together: ``x-ratelimit-{limit,remaining,reset}`` (Together adds
  ``x-tokenlimit-*``) over a window they do not name (seconds, not a minute): only the
  remaining count is passed on, a live level whatever the window.
- A vLLM box sends none: None.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from datetime import datetime

from datamill.ratelimit_hints import RateLimitHints

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(value: str) -> float | None:
    """OpenAI's reset durations: ``1s``, ``6m0s``, ``20ms``, ``1h2m3.5s``; or bare seconds."""
    total = 0.0
    matched = False
    for number, unit in _DURATION.findall(value):
        matched = True
        total += float(number) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    if matched:
        return total
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


def _number(value: str | None) -> int | None:
    """A count, or None for garbage, NaN or infinity."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if math.isfinite(number) else None


def _duration(value: str | None) -> float | None:
    return parse_duration(value) if value else None


def _names(suffix_requests: str, suffix_tokens: str) -> tuple[str, ...]:
    return tuple(
        f"x-ratelimit-{field}-{kind}"
        for kind in (f"requests{suffix_requests}", f"tokens{suffix_tokens}")
        for field in ("limit", "remaining", "reset")
    )


_OPENAI_NAMES = _names("", "")
_CEREBRAS_NAMES = _names("-minute", "-minute")


def _by_names(headers: Mapping[str, str], names: tuple[str, ...]) -> RateLimitHints:
    limit_r, remaining_r, reset_r, limit_t, remaining_t, reset_t = names
    return RateLimitHints(
        limit_requests=_number(headers.get(limit_r)),
        remaining_requests=_number(headers.get(remaining_r)),
        reset_requests=_duration(headers.get(reset_r)),
        limit_tokens=_number(headers.get(limit_t)),
        remaining_tokens=_number(headers.get(remaining_t)),
        reset_tokens=_duration(headers.get(reset_t)),
    )


def rate_limit_hints(
    headers: Mapping[str, str], *, now: float | None = None
) -> RateLimitHints | None:
    """The hints in an answer's headers (lower-case names); None when it sent none.
    ``now`` (wall-clock seconds) turns RFC 3339 resets into seconds from now."""
    if "x-ratelimit-limit-requests" in headers or "x-ratelimit-limit-tokens" in headers:
        return _by_names(headers, _OPENAI_NAMES)
    if "x-ratelimit-limit-tokens-minute" in headers or (
        "x-ratelimit-limit-requests-minute" in headers
    ):
        return _by_names(headers, _CEREBRAS_NAMES)
    if "x-ratelimit-remaining-requests" in headers or "x-ratelimit-remaining-tokens" in headers:
        return _by_names(headers, _OPENAI_NAMES)  # Azure OpenAI: remaining counts only
    if "x-ratelimit-remaining" in headers:
        return RateLimitHints(
            remaining_requests=_number(headers["x-ratelimit-remaining"]),
            remaining_tokens=_number(headers.get("x-tokenlimit-remaining")),
        )
    return anthropic_hints(headers, now=time.time() if now is None else now)


def anthropic_hints(headers: Mapping[str, str], *, now: float) -> RateLimitHints | None:
    """``anthropic-ratelimit-*`` headers; None when there are none."""
    prefix = "anthropic-ratelimit-"
    requests = prefix + "requests-"
    tokens = prefix + "tokens-"
    if tokens + "limit" not in headers and prefix + "input-tokens-limit" in headers:
        tokens = prefix + "input-tokens-"
    if requests + "limit" not in headers and tokens + "limit" not in headers:
        return None
    return RateLimitHints(
        limit_requests=_number(headers.get(requests + "limit")),
        remaining_requests=_number(headers.get(requests + "remaining")),
        reset_requests=_reset_seconds(headers.get(requests + "reset"), now),
        limit_tokens=_number(headers.get(tokens + "limit")),
        remaining_tokens=_number(headers.get(tokens + "remaining")),
        reset_tokens=_reset_seconds(headers.get(tokens + "reset"), now),
    )


def _reset_seconds(value: str | None, now: float) -> float | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:  # RFC 3339 always has an offset; a bare time is no hint
        return None
    return max(0.0, moment.timestamp() - now)
