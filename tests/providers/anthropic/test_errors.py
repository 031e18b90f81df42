"""Anthropic's error answers and rate-limit headers in datamill's terms."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from datamill.errors import ErrorCategory
from datamill.providers.anthropic.errors import (
    error_from_answer,
    error_from_body,
    rate_limit_hints,
)
from datamill.providers.base import RateLimitHints
from datamill.providers.http import HttpAnswer

C = ErrorCategory
NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC).timestamp()


def answer(status: int, error_type: str | None, headers: dict[str, str] | None = None, **extra):
    body = {
        "type": "error",
        "error": {"type": error_type, "message": f"{error_type} says no", **extra},
    }
    return HttpAnswer(status, headers or {}, orjson.dumps(body))


@pytest.mark.parametrize(
    ("status", "error_type", "category"),
    [
        (400, "invalid_request_error", C.bad_request),
        (401, "authentication_error", C.auth),
        (402, "billing_error", C.auth),
        (403, "permission_error", C.auth),
        (404, "not_found_error", C.not_found),
        (413, "request_too_large", C.bad_request),
        (429, "rate_limit_error", C.rate_limited),
        (500, "api_error", C.server_error),
        (504, "timeout_error", C.timeout),
        (529, "overloaded_error", C.server_error),
        # An unknown type falls back on the status.
        (503, "brand_new_error", C.server_error),
        (422, None, C.bad_request),
    ],
)
def test_error_types_and_statuses_map_to_categories(status, error_type, category):
    error = error_from_answer(answer(status, error_type, {"request-id": "req_1"}), now=NOW)
    assert (error.category, error.status_code) == (category, status)
    assert error.message == f"{error_type} says no"
    assert error.request_id == "req_1"
    assert error.body["error"]["type"] == error_type  # the upstream body, kept


def test_a_spend_limit_is_not_a_rate_limit():
    error = error_from_answer(
        answer(429, "rate_limit_error", details={"error_code": "enforced_spend_limit_reached"}),
        now=NOW,
    )
    assert error.category is C.auth


def test_retry_after_is_the_servers_hint():
    error = error_from_answer(answer(429, "rate_limit_error", {"retry-after": "7"}), now=NOW)
    assert error.retry_after == 7.0
    assert error_from_answer(answer(529, "overloaded_error"), now=NOW).retry_after is None


def test_a_429_without_retry_after_waits_for_the_exhausted_window():
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2026-11-24T12:00:12Z",
        "anthropic-ratelimit-tokens-limit": "1000",
        "anthropic-ratelimit-tokens-remaining": "500",
        "anthropic-ratelimit-tokens-reset": "2026-11-24T12:00:40Z",
    }
    error = error_from_answer(answer(429, "rate_limit_error", headers), now=NOW)
    assert error.retry_after == 12.0  # the requests window; tokens remain


def test_a_body_that_is_not_json_is_kept_as_text():
    error = error_from_answer(HttpAnswer(502, {}, b"<html>bad gateway</html>"), now=NOW)
    assert error.category is C.server_error
    assert error.message == "<html>bad gateway</html>"


def test_a_batch_results_error_carries_its_request_id_and_implied_status():
    error = error_from_body(
        {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "busy"},
            "request_id": "r9",
        }
    )
    assert (error.category, error.status_code, error.request_id) == (C.server_error, 529, "r9")


def test_rate_limit_headers_become_hints_with_resets_in_seconds():
    hints = rate_limit_hints(
        {
            "anthropic-ratelimit-requests-limit": "1000",
            "anthropic-ratelimit-requests-remaining": "999",
            "anthropic-ratelimit-requests-reset": "2026-11-24T12:00:01.500000+00:00",
            "anthropic-ratelimit-tokens-limit": "96000",
            "anthropic-ratelimit-tokens-remaining": "95000",
            "anthropic-ratelimit-tokens-reset": "2026-11-24T11:59:00Z",
        },
        now=NOW,
    )
    assert hints == RateLimitHints(
        limit_requests=1000,
        remaining_requests=999,
        reset_requests=1.5,
        limit_tokens=96000,
        remaining_tokens=95000,
        reset_tokens=0.0,  # a reset in the past: now
    )


def test_input_token_limits_stand_for_tokens_when_alone():
    hints = rate_limit_hints(
        {
            "anthropic-ratelimit-input-tokens-limit": "80000",
            "anthropic-ratelimit-input-tokens-remaining": "79000",
            "anthropic-ratelimit-input-tokens-reset": "2026-11-24T12:00:30Z",
        },
        now=NOW,
    )
    assert hints is not None
    assert (hints.limit_tokens, hints.remaining_tokens, hints.reset_tokens) == (80000, 79000, 30.0)
    assert hints.limit_requests is None


def test_no_or_garbage_headers_give_no_hint():
    assert rate_limit_hints({"x-ratelimit-limit-requests": "5"}, now=NOW) is None
    hints = rate_limit_hints(
        {
            "anthropic-ratelimit-requests-limit": "lots",
            "anthropic-ratelimit-requests-reset": "tomorrow",
        },
        now=NOW,
    )
    assert hints == RateLimitHints()
