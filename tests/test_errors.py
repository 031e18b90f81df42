"""`upstream_param_and_code`: what a gateway error keeps of an upstream's error body."""

from __future__ import annotations

from typing import Any

import pytest

from datamill.errors import ErrorCategory, ProviderError, UpstreamFailed, upstream_param_and_code

C = ErrorCategory


@pytest.mark.parametrize(
    ("body", "param", "expected"),
    [
        # OpenAI and the compatible servers.
        (
            {"error": {"message": "m", "param": "model", "code": "invalid_value"}},
            None,
            ("model", "invalid_value"),
        ),
        # Gemini: a numeric code, its status names it.
        (
            {"error": {"code": 400, "message": "m", "status": "INVALID_ARGUMENT"}},
            None,
            (None, "INVALID_ARGUMENT"),
        ),
        # Anthropic: neither.
        (
            {"type": "error", "error": {"type": "invalid_request_error", "message": "m"}},
            None,
            (None, None),
        ),
        # A field datamill refused itself, and a body that is not an object.
        (None, "seed", ("seed", None)),
        ("oops", None, (None, None)),
    ],
)
def test_the_upstreams_own_param_and_code_are_kept(body: Any, param: str | None, expected):
    error = ProviderError(C.bad_request, "m", status_code=400, body=body, param=param)
    assert upstream_param_and_code(error) == expected


def test_the_category_has_a_field_of_its_own():
    body = {
        "error": {
            "message": "slow down",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    error = ProviderError(C.rate_limited, "slow down", status_code=429, body=body, retry_after=2.5)

    failed = UpstreamFailed(
        error, deployment="oa", rate_limits={"x-ratelimit-limit-requests": "60"}
    )

    assert failed.status_code == 429
    assert failed.to_body() == {
        "error": {
            "message": "slow down",
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
            "datamill_category": "rate_limited",
        }
    }
    assert failed.headers() == {
        "x-ratelimit-limit-requests": "60",
        "x-datamill-deployment": "oa",
        "retry-after": "3",
        "retry-after-ms": "2500",
    }
