"""Reading per-minute limits from ``x-ratelimit-*`` headers whose meaning differs."""

from __future__ import annotations

import pytest

from datamill.providers.base import RateLimitHints
from datamill.providers.http import rate_limit_hints
from datamill.scheduler.headers import HeaderLimits, per_minute, read_limits
from datamill_testing.mock_ratelimits import ratelimit_headers


def test_openai_headers_are_per_minute():
    hints = rate_limit_hints(
        {
            "x-ratelimit-limit-requests": "3000",
            "x-ratelimit-remaining-requests": "2999",
            "x-ratelimit-reset-requests": "20ms",
            "x-ratelimit-limit-tokens": "250000",
            "x-ratelimit-remaining-tokens": "249950",
            "x-ratelimit-reset-tokens": "12ms",
        }
    )
    assert hints is not None
    assert read_limits(hints) == HeaderLimits(
        requests_per_minute=3000, tokens_per_minute=250000, remaining_requests=2999
    )


def test_groq_requests_per_day_are_not_read_as_per_minute():
    # Groq: x-ratelimit-limit-requests is requests per *day*; tokens are per minute.
    hints = rate_limit_hints(
        {
            "x-ratelimit-limit-requests": "14400",
            "x-ratelimit-remaining-requests": "14370",
            "x-ratelimit-reset-requests": "2m59.56s",
            "x-ratelimit-limit-tokens": "6000",
            "x-ratelimit-remaining-tokens": "5000",
            "x-ratelimit-reset-tokens": "7.66s",
        }
    )
    assert hints is not None
    assert read_limits(hints) == HeaderLimits(
        requests_per_minute=None, tokens_per_minute=6000, long_window_requests=14400
    )


def test_a_short_reset_of_a_daily_cap_still_gives_it_away():
    # One request into a fresh day: 14400 a day refill one per 6 s. Refilling 1 of 14400 in
    # 6 s means a window of 86,400 s, not a minute.
    assert not per_minute(14400, 14399, 6.0)


@pytest.mark.parametrize(
    ("limit", "remaining", "reset"),
    [
        (3000, 2999, 0.02),  # OpenAI, one call in: a 60 s window
        (3000, 25, 0.5),  # the mock's one-second bucket, half empty
        (60, 0, 58.0),  # a fixed one-minute window, spent
        (3000, 2900, 30.0),  # a fixed one-minute window early on: implies 15 minutes
        (3000, 3000, 0.0),  # untouched: nothing to judge
        (500, None, None),  # no reset at all: OpenAI's convention, per minute
    ],
)
def test_per_minute_figures(limit, remaining, reset):
    assert per_minute(limit, remaining, reset)


@pytest.mark.parametrize(
    ("limit", "remaining", "reset"),
    [
        (200, 150, 432.0),  # OpenAI's free tier sends its daily cap when that binds: 7m12s
        (14400, 14399, 6.0),  # a daily cap one request in
        (1000, 999, 91.0),  # longer than any minute window resets
    ],
)
def test_figures_that_are_not_per_minute(limit, remaining, reset):
    assert not per_minute(limit, remaining, reset)


def test_cerebras_names_its_windows_and_only_the_minute_ones_are_read():
    hints = rate_limit_hints(
        {
            "x-ratelimit-limit-requests-day": "14400",
            "x-ratelimit-limit-tokens-minute": "60000",
            "x-ratelimit-remaining-requests-day": "14399",
            "x-ratelimit-remaining-tokens-minute": "59000",
            "x-ratelimit-reset-requests-day": "33011.382867097855",
            "x-ratelimit-reset-tokens-minute": "11.382867097854614",
        }
    )
    assert hints is not None
    assert hints.limit_requests is None
    assert (hints.limit_tokens, hints.remaining_tokens) == (60000, 59000)
    assert hints.reset_tokens == pytest.approx(11.3829, abs=1e-3)
    assert read_limits(hints) == HeaderLimits(tokens_per_minute=60000)


def test_zero_or_missing_limits_say_nothing():
    assert read_limits(RateLimitHints(limit_requests=0, remaining_requests=0)) == HeaderLimits()
    assert read_limits(RateLimitHints(remaining_tokens=5)) == HeaderLimits()


# -- every provider's convention, as the mock provider sends it -------------------------------


class _Bucket:
    def __init__(self, rate: float, capacity: float, level: float) -> None:
        self.rate, self.capacity, self.level = rate, capacity, level

    def reset_after(self) -> float:
        return (self.capacity - self.level) / self.rate


@pytest.mark.parametrize(
    ("convention", "expected"),
    [
        ("openai", HeaderLimits(3000, 90000, remaining_requests=0)),
        ("openai-live", HeaderLimits(3000, 90000, remaining_requests=0)),
        # Azure: remaining counts alone; no limit to pace at, a live level to heed.
        ("azure", HeaderLimits(remaining_requests=0)),
        # Groq: a day's requests (not a pace), tokens per minute.
        ("groq", HeaderLimits(tokens_per_minute=90000, long_window_requests=3000 * 1440)),
        ("cerebras", HeaderLimits(tokens_per_minute=90000)),
        ("anthropic", HeaderLimits(3000, 90000, remaining_requests=0)),
        # OpenRouter and Together: a window of seconds, unnamed: the remaining count only.
        ("openrouter", HeaderLimits(remaining_requests=0)),
        ("together", HeaderLimits(remaining_requests=0)),
    ],
)
def test_each_conventions_headers_are_read_for_what_they_mean(convention, expected):
    requests = _Bucket(50.0, 50.0, 0.4)  # empty: 0 left
    tokens = _Bucket(1500.0, 90000.0, 80000.0)
    headers = ratelimit_headers(convention, requests, tokens, rpm=3000, tpm=90000, used_today=6000)
    hints = rate_limit_hints({name.lower(): value for name, value in headers.items()})
    assert hints is not None
    assert read_limits(hints) == expected


def test_a_vllm_box_sends_no_headers():
    bucket = _Bucket(50.0, 50.0, 10.0)
    headers = ratelimit_headers("vllm", bucket, bucket, rpm=3000, tpm=90000, used_today=0)
    assert rate_limit_hints(headers) is None
