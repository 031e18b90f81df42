"""The translation of HTTP answers: error categories, retry hints, rate-limit headers."""

from __future__ import annotations

import email.utils
import time

import pytest

from datamill.errors import ErrorCategory
from datamill.providers.base import RateLimitHints
from datamill.providers.http import (
    HttpAnswer,
    category_for_status,
    error_from_answer,
    parse_duration,
    rate_limit_hints,
    retry_after_seconds,
)

C = ErrorCategory


def openai_error(code: str | None = None, kind: str | None = None) -> dict:
    return {"error": {"message": "m", "type": kind, "param": None, "code": code}}


@pytest.mark.parametrize(
    ("status", "category"),
    [
        (400, C.bad_request),
        (401, C.auth),
        (402, C.bad_request),
        (403, C.auth),
        (404, C.not_found),
        (405, C.bad_request),
        (408, C.timeout),
        (409, C.server_error),
        (413, C.bad_request),
        (422, C.bad_request),
        (429, C.rate_limited),
        (500, C.server_error),
        (502, C.server_error),
        (503, C.server_error),
        (504, C.server_error),
        (529, C.server_error),
        (599, C.server_error),
    ],
)
def test_category_for_status(status, category):
    assert category_for_status(status, openai_error()) is category
    assert category_for_status(status, None) is category
    assert category_for_status(status, "not json") is category


def test_insufficient_quota_is_auth_not_a_rate_limit():
    assert category_for_status(429, openai_error("insufficient_quota")) is C.auth
    assert category_for_status(429, openai_error(kind="insufficient_quota")) is C.auth
    assert category_for_status(429, openai_error("rate_limit_exceeded")) is C.rate_limited


@pytest.mark.parametrize("code", ["content_filter", "content_policy_violation"])
@pytest.mark.parametrize("status", [400, 403, 422, 500])
def test_content_filter_codes_win_over_the_status(status, code):
    assert category_for_status(status, openai_error(code)) is C.content_filter
    assert category_for_status(status, openai_error(kind=code)) is C.content_filter


def test_the_code_is_read_only_from_an_error_object():
    assert category_for_status(400, {"error": "content_filter"}) is C.bad_request
    assert category_for_status(400, {"code": "content_filter"}) is C.bad_request
    assert category_for_status(400, [openai_error("content_filter")]) is C.bad_request


# -- error_from_answer ------------------------------------------------------------------------


def test_error_from_answer_keeps_the_upstream_body_and_hints():
    body = b'{"error": {"message": "Slow down", "type": "requests", "code": "rate_limit_exceeded"}}'
    answer = HttpAnswer(429, {"retry-after": "7", "x-request-id": "req_1"}, body)

    error = error_from_answer(answer)

    assert error.category is C.rate_limited
    assert error.message == "Slow down"
    assert error.status_code == 429
    assert error.body == {
        "error": {"message": "Slow down", "type": "requests", "code": "rate_limit_exceeded"}
    }
    assert error.retry_after == 7.0
    assert error.request_id == "req_1"


def test_error_from_answer_with_a_body_that_is_not_json():
    error = error_from_answer(HttpAnswer(502, {}, b"<html>Bad Gateway</html>"))
    assert error.category is C.server_error
    assert error.message == "<html>Bad Gateway</html>"
    assert error.body == {"error": {"message": "<html>Bad Gateway</html>"}}
    assert error.retry_after is None


def test_error_from_answer_with_an_empty_body():
    error = error_from_answer(HttpAnswer(503, {}, b""))
    assert (error.category, error.message, error.body) == (C.server_error, "HTTP 503", None)


def test_error_from_answer_with_a_string_error():
    error = error_from_answer(HttpAnswer(400, {}, b'{"error": "model is required"}'))
    assert (error.category, error.message) == (C.bad_request, "model is required")


# -- retry_after_seconds ----------------------------------------------------------------------


def test_retry_after_ms_wins_over_retry_after():
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5


def test_retry_after_in_seconds():
    assert retry_after_seconds({"retry-after": "20"}) == 20.0
    assert retry_after_seconds({"retry-after": "0.25"}) == 0.25
    assert retry_after_seconds({"retry-after": "-3"}) == 0.0


def test_retry_after_as_an_http_date():
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert retry_after_seconds({"retry-after": date}) == pytest.approx(30, abs=2)
    past = email.utils.formatdate(time.time() - 300, usegmt=True)
    assert retry_after_seconds({"retry-after": past}) == 0.0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"retry-after": ""},
        {"retry-after": "soon"},
        {"retry-after": "Mon, garbage"},
        {"retry-after": "Mon, 32 Foo 2024 99:99:99 GMT"},
        {"retry-after": "inf"},
        {"retry-after": "nan"},
        {"retry-after-ms": "abc"},
        {"retry-after-ms": ""},
        {"retry-after-ms": "inf"},
    ],
)
def test_retry_after_garbage_is_no_hint(headers):
    assert retry_after_seconds(headers) is None


def test_a_garbage_date_never_fails_the_error_translation():
    answer = HttpAnswer(429, {"retry-after": "Mon, garbage"}, b'{"error": {"message": "x"}}')
    error = error_from_answer(answer)
    assert (error.category, error.retry_after) == (C.rate_limited, None)


def test_garbage_retry_after_ms_falls_back_to_retry_after():
    assert retry_after_seconds({"retry-after-ms": "abc", "retry-after": "4"}) == 4.0


def test_retry_after_headers_are_case_insensitive_on_real_answers():
    from multidict import CIMultiDict

    assert retry_after_seconds(CIMultiDict({"Retry-After": "3"})) == 3.0
    assert retry_after_seconds(CIMultiDict({"Retry-After-Ms": "250"})) == 0.25


# -- parse_duration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("0s", 0.0),
        ("2m", 120.0),
        ("1.5h", 5400.0),
        ("7.66s", 7.66),
        ("3", 3.0),
        ("0.5", 0.5),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "ms", "-"])
def test_parse_duration_garbage_is_none(text):
    assert parse_duration(text) is None


# -- rate_limit_hints -------------------------------------------------------------------------


def test_rate_limit_hints_from_openai_headers():
    headers = {
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-reset-requests": "120ms",
        "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "29000.0",
        "x-ratelimit-reset-tokens": "2m0s",
    }
    assert rate_limit_hints(headers) == RateLimitHints(
        limit_requests=500,
        remaining_requests=499,
        reset_requests=pytest.approx(0.12),
        limit_tokens=30000,
        remaining_tokens=29000,
        reset_tokens=120.0,
    )


def test_rate_limit_hints_with_only_some_headers():
    hints = rate_limit_hints({"x-ratelimit-limit-tokens": "1000", "x-ratelimit-reset-tokens": "x"})
    assert hints == RateLimitHints(limit_tokens=1000)
    hints = rate_limit_hints(
        {"x-ratelimit-limit-requests": "many", "x-ratelimit-remaining-requests": "3"}
    )
    assert hints == RateLimitHints(remaining_requests=3)


def test_rate_limit_hints_ignore_numbers_that_are_not_counts():
    hints = rate_limit_hints(
        {
            "x-ratelimit-limit-requests": "inf",
            "x-ratelimit-remaining-requests": "nan",
            "x-ratelimit-limit-tokens": "-Infinity",
            "x-ratelimit-remaining-tokens": "12",
        }
    )
    assert hints == RateLimitHints(remaining_tokens=12)


def test_no_rate_limit_headers_means_no_hints():
    assert rate_limit_hints({}) is None
    # Azure OpenAI sends the remaining counts alone.
    assert rate_limit_hints({"x-ratelimit-remaining-requests": "3"}) == RateLimitHints(
        remaining_requests=3
    )
