"""`reset_duration`: OpenAI's reset format, read back by datamill's own parser."""

from __future__ import annotations

import pytest

from datamill.gateway.ratelimits import reset_duration
from datamill.providers.http import parse_duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (0.02, "20ms"),
        (0.0201, "21ms"),
        (1.0, "1s"),
        (1.5, "1.5s"),
        (360.0, "6m0s"),
        (3723.5, "1h2m3.5s"),
    ],
)
def test_resets_are_written_as_openai_writes_them(seconds, text):
    assert reset_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds, abs=0.001)
