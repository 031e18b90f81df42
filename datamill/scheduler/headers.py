"""What a provider's ``x-ratelimit-*`` headers say about its per-minute limits.

The same header names mean different things across providers. OpenAI's
``x-ratelimit-limit-requests`` is requests per minute; Groq sends its requests per *day*
under the same name (its per-minute budget is ``x-ratelimit-limit-tokens``). The headers
never name their window, so it is read from the reset: a per-minute window refills within
a minute, so a reset well past a minute, or a reset that implies a window of hours (the time
to refill what was used, scaled to the whole limit), says the figure is not per minute.
Such a figure is kept only for the snapshot: pacing a daily cap as if it were per minute
would send 1,440 times too fast.

A remaining count is a live level whatever the reset says (``0s`` with remaining 0 is a
bucket that is empty right now, not a minute's budget spent); it is passed on unless it
belongs to a long window, including when no limit comes with it (Azure OpenAI).
"""

from __future__ import annotations

from dataclasses import dataclass

from datamill.ratelimit_hints import RateLimitHints

# A per-minute window never takes longer than a minute to reset; the margin absorbs
# rounding and clock skew on the provider's side.
_MINUTE_RESET = 90.0
# Refill time scaled to the whole limit: about 60 s for a per-minute bucket, about
# 86,400 s for a daily one. A fixed one-minute window early in the minute can imply more
# than a minute too, so only a window of hours is taken as proof.
_LONG_WINDOW = 3600.0


@dataclass(frozen=True, slots=True)
class HeaderLimits:
    """Per-minute limits read from one answer, and figures that are not per minute."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    long_window_requests: int | None = None  # e.g. Groq's requests per day
    long_window_tokens: int | None = None
    remaining_requests: int | None = None  # left in a short (or unnamed) window


def per_minute(limit: int, remaining: int | None, reset: float | None) -> bool:
    """Whether ``limit`` (with its remaining count and reset seconds) is a per-minute figure.

    Without a reset the OpenAI convention (per minute) is assumed."""
    if reset is None:
        return True
    if reset > _MINUTE_RESET:
        return False
    if remaining is not None and 0 <= remaining < limit and reset > 0:
        implied_window = reset * limit / (limit - remaining)
        return implied_window <= _LONG_WINDOW
    return True


def read_limits(hints: RateLimitHints) -> HeaderLimits:
    requests = hints.limit_requests if hints.limit_requests and hints.limit_requests > 0 else None
    tokens = hints.limit_tokens if hints.limit_tokens and hints.limit_tokens > 0 else None
    minute_requests = minute_tokens = long_requests = long_tokens = None
    if requests is not None:
        if per_minute(requests, hints.remaining_requests, hints.reset_requests):
            minute_requests = requests
        else:
            long_requests = requests
    if tokens is not None:
        if per_minute(tokens, hints.remaining_tokens, hints.reset_tokens):
            minute_tokens = tokens
        else:
            long_tokens = tokens
    remaining = hints.remaining_requests
    if remaining is not None and (
        remaining < 0  # Azure sends -1 where it has no figure
        or long_requests is not None
        or (hints.limit_requests is not None and hints.limit_requests <= 0)
    ):
        remaining = None
    return HeaderLimits(minute_requests, minute_tokens, long_requests, long_tokens, remaining)
